"""Approval rules (auto-approval by version, range or pattern, after a minimum age) and the
per-image approval policy (four-eyes, webhook secret, rollout template)."""
