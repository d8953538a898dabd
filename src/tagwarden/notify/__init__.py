"""Outbound notifications: channels, the transactional outbox, and its delivery worker."""
