"""Inbound registry webhooks: a push is a hint to check the image now, never a source of truth."""
