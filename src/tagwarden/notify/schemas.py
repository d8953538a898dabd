"""Notification channel bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tagwarden.inputs import STRICT_INPUT
from tagwarden.notify.models import NotificationChannel
from tagwarden.notify.service import redacted


class ChannelCreate(BaseModel):
    model_config = STRICT_INPUT

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["slack", "discord", "webhook", "email"]
    config: dict[str, Any] = Field(
        description='slack/discord: {"url"}; webhook: {"url", "secret"?}; email: {"to": [...]}'
    )
    events: list[str] = Field(min_length=1, max_length=32, description='event names, or ["*"]')


class ChannelOut(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any] = Field(description="secrets and webhook URLs shown redacted")
    events: list[str]
    enabled: bool
    created_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, channel: NotificationChannel) -> ChannelOut:
        return cls(
            id=channel.id,
            name=channel.name,
            kind=channel.kind,
            config=redacted(channel.config),
            events=list(channel.events),
            enabled=channel.enabled,
            created_at=channel.created_at,
            created_by=channel.created_by,
        )


class ChannelCreated(ChannelOut):
    secret: str | None = Field(
        default=None, description="webhook channels: the HMAC secret, shown once"
    )


class ChannelTestOut(BaseModel):
    ok: bool
    detail: str


class OutboxOut(BaseModel):
    pending: int
    delivered: int
    failed: int
    recent_failures: list[dict[str, Any]]
