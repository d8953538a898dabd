"""How each kind of channel sends one event: Slack, Discord, signed JSON webhook, email."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import httpx

from tagwarden.config import Settings
from tagwarden.db import utcnow
from tagwarden.remote import reason, transport_failure

SIGNATURE_HEADER = "X-Tagwarden-Signature"
IDEMPOTENCY_HEADER = "X-Tagwarden-Idempotency-Key"
EVENT_HEADER = "X-Tagwarden-Event"
DISCORD_LIMIT = 2000


class DeliveryFailed(Exception):
    """The receiver did not take the event; the outbox will try again later."""


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    event: str
    payload: dict[str, Any]
    created_at: datetime

    def body(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "event": self.event,
            "created_at": self.created_at.isoformat(),
            "payload": self.payload,
        }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def summary(message: Message) -> str:
    """One line a person reads in a chat or a subject."""
    p = message.payload
    ref = p.get("reference") or (
        f"{p.get('image')}:{p.get('tag')}" if p.get("image") and p.get("tag") else p.get("image")
    )
    parts = [f"[tagwarden] {message.event}"]
    if ref:
        parts.append(str(ref))
    for key in ("status", "reviewed_by", "digest", "error", "rollout_id"):
        if p.get(key) not in (None, ""):
            parts.append(f"{key}={p[key]}")
    return " · ".join(parts)


async def send(
    kind: str,
    config: dict[str, Any],
    message: Message,
    *,
    http: httpx.AsyncClient,
    settings: Settings,
) -> None:
    """Deliver or raise :class:`DeliveryFailed` with a reason fit for ``last_error``."""
    headers = {IDEMPOTENCY_HEADER: message.key, EVENT_HEADER: message.event}
    if kind == "email":
        await asyncio.to_thread(_send_email, config, message, settings)
        return
    if kind == "slack":
        body = json.dumps({"text": summary(message)}).encode()
    elif kind == "discord":
        body = json.dumps({"content": summary(message)[:DISCORD_LIMIT]}).encode()
    elif kind == "webhook":
        body = json.dumps(message.body(), separators=(",", ":"), sort_keys=True).encode()
        headers[SIGNATURE_HEADER] = sign(str(config["secret"]), body)
    else:
        raise DeliveryFailed(f"unknown channel kind {kind!r}")
    headers["Content-Type"] = "application/json"
    try:
        response = await http.post(
            str(config["url"]),
            content=body,
            headers=headers,
            timeout=settings.notify_timeout_seconds,
        )
    except httpx.HTTPError as exc:
        raise DeliveryFailed(transport_failure(exc)) from exc
    if not response.is_success:
        # The status in our words, not the receiver's body: last_error is shown in the API, the
        # CLI and the channel test's answer, and the receiver may be anyone's server.
        raise DeliveryFailed(f"HTTP {reason(response.status_code)}")


def _send_email(config: dict[str, Any], message: Message, settings: Settings) -> None:
    if not settings.smtp_host:
        raise DeliveryFailed("email channels need TAGWARDEN_SMTP_HOST")
    mail = EmailMessage()
    mail["Subject"] = summary(message)[:200]
    mail["From"] = settings.smtp_from
    mail["To"] = ", ".join(config["to"])
    # Mail clients collapse messages with one Message-ID, so a retried send is shown once.
    mail["Message-ID"] = f"<{message.key}@tagwarden>"
    mail[IDEMPOTENCY_HEADER] = message.key
    mail[EVENT_HEADER] = message.event
    mail.set_content(json.dumps(message.body(), indent=2, sort_keys=True))
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(smtp_failure(exc)) from exc


# What each refusal of the SMTP conversation means, in our words; the server's text is left out.
_SMTP_REFUSALS: tuple[tuple[type[smtplib.SMTPResponseException], str], ...] = (
    (smtplib.SMTPConnectError, "the server refused the connection"),
    (smtplib.SMTPHeloError, "the server refused the greeting"),
    (smtplib.SMTPAuthenticationError, "the server refused the sign-in"),
    (smtplib.SMTPSenderRefused, "the server refused the sender"),
    (smtplib.SMTPDataError, "the server refused the message"),
)


def smtp_failure(exc: OSError | smtplib.SMTPException) -> str:
    """Why a mail was not sent: the reply codes, never the text an SMTP server answered with
    (smtplib's exceptions carry it), e.g. ``SMTP: the server refused the sender (550)``."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in exc.recipients.values()})
        return f"SMTP: the server refused every recipient ({', '.join(codes)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        what = next((w for t, w in _SMTP_REFUSALS if isinstance(exc, t)), "the server refused")
        return f"SMTP: {what} ({exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPException):  # raised by smtplib itself: its own words
        return f"SMTP: {type(exc).__name__}"
    # Connecting, TLS: the operating system's or OpenSSL's words, not the server's.
    detail = f": {exc.strerror}" if exc.strerror else ""
    return f"SMTP: {type(exc).__name__}{detail}"


async def send_test(
    kind: str,
    config: dict[str, Any],
    *,
    channel_name: str,
    requested_by: str,
    http: httpx.AsyncClient,
    settings: Settings,
) -> str | None:
    """Send a test message now, outside the outbox: None when the receiver took it, else why
    not (the API's and the CLI's "test a channel")."""
    message = Message(
        str(uuid.uuid4()), "test", {"channel": channel_name, "requested_by": requested_by}, utcnow()
    )
    try:
        await send(kind, config, message, http=http, settings=settings)
    except DeliveryFailed as exc:
        return str(exc)
    return None
