"""The admin UI's session: a signed cookie, the CSRF token bound to it, and the caller.

The cookie holds a random session id and, once logged in, the API token's id, identity and role.
It is signed (itsdangerous), not encrypted: it carries nothing secret, and the token itself is
never stored in it. Every request re-reads the token row, so a revoked token ends its sessions.
The CSRF token is an HMAC of the session id under the secret key: a page of this session can
embed it, a page elsewhere cannot compute it, and logging in again (a new id) changes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from tagwarden.auth.service import Principal, principal_for
from tagwarden.config import Settings
from tagwarden.db import transaction
from tagwarden.errors import Forbidden

COOKIE = "tagwarden_session"
FLASH_COOKIE = "tagwarden_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
FLASH_SECONDS = 60


class LoginRequired(Exception):
    """No valid session: pages answer with a redirect to /login (see ``render.WebRoute``)."""


class CsrfRefused(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "this form has no valid CSRF token (it may be from an old page); reload and retry",
            code="csrf_refused",
        )


@dataclass(frozen=True)
class WebSession:
    sid: str
    token_id: int | None = None
    identity: str | None = None
    role: str | None = None

    def as_payload(self) -> dict[str, Any]:
        return {"sid": self.sid, "tid": self.token_id, "idn": self.identity, "role": self.role}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=salt)


def read_session(request: Request) -> WebSession | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    settings = _settings(request)
    try:
        data = _serializer(settings, "tagwarden.web.session").loads(
            raw, max_age=settings.web_session_hours * 3600
        )
    except BadSignature:  # also covers an expired signature
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
        return None
    tid = data.get("tid")
    return WebSession(
        sid=data["sid"],
        token_id=tid if isinstance(tid, int) else None,
        identity=data.get("idn"),
        role=data.get("role"),
    )


def new_session(principal: Principal | None = None) -> WebSession:
    """A fresh id on every login, so a session id planted before login is worth nothing after."""
    sid = secrets.token_urlsafe(24)
    if principal is None:
        return WebSession(sid)
    return WebSession(sid, principal.token_id, principal.identity, principal.role)


def write_session(request: Request, response: Response, web: WebSession) -> None:
    settings = _settings(request)
    response.set_cookie(
        COOKIE,
        _serializer(settings, "tagwarden.web.session").dumps(web.as_payload()),
        max_age=settings.web_session_hours * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def csrf_token(request: Request, web: WebSession) -> str:
    key = _settings(request).secret_key.get_secret_value().encode()
    return hmac.new(key, b"csrf:" + web.sid.encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose form (or header) lacks this session's token."""
    web = read_session(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # parsed once; the route's Form() fields reuse it
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if web is None or not sent or not hmac.compare_digest(sent, csrf_token(request, web)):
        raise CsrfRefused()


async def current_user(request: Request) -> Principal:
    """The logged-in caller, re-checked against the token table on every request."""
    web = read_session(request)
    if web is None or web.token_id is None:
        raise LoginRequired()
    # A short transaction of its own, as the API's bearer check does: no write lock is held for
    # the length of the page's use case.
    async with transaction(request.app.state.sessionmaker) as session:
        principal = await principal_for(session, web.token_id)
    if principal is None:
        raise LoginRequired()
    request.state.web_session = web
    request.state.user = principal
    return principal


async def user_for_post(
    request: Request, user: Annotated[Principal, Depends(current_user)]
) -> Principal:
    """Logged in first (else a redirect to /login), then the CSRF check (else 403)."""
    await check_csrf(request)
    return user


# Pages take ``user: WebUser``; form posts take ``user: PostingUser``.
WebUser = Annotated[Principal, Depends(current_user)]
PostingUser = Annotated[Principal, Depends(user_for_post)]


def need(user: Principal, role: str) -> None:
    """The server's own check: a button hidden from a role is also refused to a forged post."""
    if not user.has(role):
        raise Forbidden(f"this action needs the {role} role; you are signed in as {user.role}")
