"""Secrets out of logs and views: the one redaction every writer uses.

What is a secret here: the Docker Hub webhook secret (a path segment), the password of a URL's
userinfo (``https://user:pass@host``; a userinfo without a password is a token and goes whole),
and the value of a query parameter named like a credential (``?token=…``). Each becomes
``***``; the rest stays, so a line or a channel is still recognisable.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# The path segment after /webhooks/dockerhub/ is the credential itself.
_DOCKERHUB = re.compile(r"(/webhooks/dockerhub/)[^/?#\s\"']+")
# scheme://user:password@ or scheme://token@ (no "/" before the "@": that would be a path).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#@\s\"']+)@")
# The names of credentials, not one.
_SECRET_NAMES = (
    r"(?:access_?token|api_?key|apikey|auth|key|pass|passwd|password|secret|sig|signature|"  # noqa: S105
    r"token|[A-Za-z0-9_.-]*(?:token|secret|password|apikey|api_key))"
)
_QUERY = re.compile(rf"(?P<lead>[?&;]{_SECRET_NAMES}=)[^&#\s\"']*", re.IGNORECASE)


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["info"].partition(":")
    return f"{match['scheme']}{user}:{MASK}@" if colon else f"{match['scheme']}{MASK}@"


def redact_text(text: str) -> str:
    """``text`` (a log line, an error, a URL) with every secret above replaced by ``***``."""
    if "/" not in text and "=" not in text:  # nothing to find: the common log line, fast
        return text
    text = _DOCKERHUB.sub(rf"\g<1>{MASK}", text)
    text = _USERINFO.sub(_userinfo, text)
    return _QUERY.sub(rf"\g<lead>{MASK}", text)


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """A URL fit to show: its password and credential-like query values masked; without
    ``keep_path``, only scheme, user and host (a chat webhook's path is its secret)."""
    redacted = redact_text(url)
    if keep_path:
        return redacted
    scheme, sep, rest = redacted.partition("://")
    if not sep:
        return "…"
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return f"{scheme}://{authority}/…"


def _clean(value: Any) -> Any:
    return redact_text(value) if isinstance(value, str) else value


class RedactingFilter(logging.Filter):
    """Redacts a record's message and arguments in place, keeping their shape: uvicorn's access
    formatter unpacks ``record.args`` as (client, method, path, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        return True


def install_log_redaction() -> None:
    """Put the filter on the root's handlers and on tagwarden's logger, so records reach no
    output unredacted. uvicorn's own handlers get it from ``cli.serve.log_config``: once per
    record, since every request's access line passes through it."""
    redacting = RedactingFilter()
    for name in ("", "tagwarden"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(redacting)
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redacting)
