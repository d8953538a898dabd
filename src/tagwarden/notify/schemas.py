"""Notification channel bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from tagwarden.inputs import NO_NUL, STRICT_INPUT, Name
from tagwarden.notify.models import EVENTS, NotificationChannel
from tagwarden.notify.service import ALL_EVENTS, redacted

# What check_config takes, said in the document: an http(s) URL with a host (DNS-style labels,
# an optional user and port), then any printable ASCII. httpx parses every such URL, so the
# document promises nothing the server then refuses.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_USERINFO = r"(?:[A-Za-z0-9._~%!$&'()*+,;=:-]+@)?"  # user:password@, redacted when shown
URL_PATTERN = rf"^https?://{_USERINFO}{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?(?:[/?#][!-~]*)?$"
# An address is refused with CR, LF (header injection), "," or ";" (a second recipient) in it.
ADDRESS_PATTERN = r"^[^\r\n,;\x00]*@[^\r\n,;\x00]*$"

Url = Annotated[
    str, Field(max_length=2000, pattern=URL_PATTERN, examples=["https://hooks.example/x"])
]
Address = Annotated[str, Field(max_length=254, pattern=ADDRESS_PATTERN)]
Event = Annotated[
    str, Field(json_schema_extra={"enum": [*EVENTS, ALL_EVENTS]}, description="or '*' for all")
]


class UrlConfig(BaseModel):
    model_config = STRICT_INPUT

    url: Url


class WebhookConfig(BaseModel):
    model_config = STRICT_INPUT

    url: Url
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        pattern=NO_NUL,
        description="the HMAC signing secret; made up when absent",
    )


class EmailConfig(BaseModel):
    model_config = STRICT_INPUT

    to: Address | Annotated[list[Address], Field(min_length=1, max_length=100)]


class _ChannelFields(BaseModel):
    model_config = STRICT_INPUT

    name: Name = Field(min_length=1, max_length=100)
    events: list[Event] = Field(min_length=1, max_length=32)

    def config_dict(self) -> dict[str, Any]:
        config: BaseModel = getattr(self, "config")  # noqa: B009 - every kind has one
        return config.model_dump(exclude_none=True)


class SlackChannel(_ChannelFields):
    kind: Literal["slack"]
    config: UrlConfig


class DiscordChannel(_ChannelFields):
    kind: Literal["discord"]
    config: UrlConfig


class WebhookChannel(_ChannelFields):
    kind: Literal["webhook"]
    config: WebhookConfig


class EmailChannel(_ChannelFields):
    kind: Literal["email"]
    config: EmailConfig


# One body per kind, told apart by `kind`: the document says which config each kind needs, so
# a body it allows is one check_config takes. The JSON is the same {name, kind, config, events}.
ChannelCreate = Annotated[
    SlackChannel | DiscordChannel | WebhookChannel | EmailChannel,
    Field(discriminator="kind"),
]


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
