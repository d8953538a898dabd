"""The admin UI's session: a signed cookie, the CSRF token bound to it, and the caller.

The cookie holds a random session id and, once logged in, the API token's id, identity and role.
It is signed (itsdangerous), not encrypted: it carries nothing secret, and the token itself is
never stored in it. A logged-in session is also a ``web_sessions`` row: every request checks
that the row is there, unexpired and for the cookie's token, and that the token is not revoked,
so logging out (which deletes the row) or revoking the token ends the session on the server,
whatever copies of the cookie exist. The key is the server's session secret
(``auth/secret.py``): TAGWARDEN_SECRET_KEY, or one generated and kept in the database.
The CSRF token is an HMAC of the session id under that key: a page of this session can
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

from tagwarden.auth.secret import session_secret
from tagwarden.auth.service import Principal, principal_for_session
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


def signer(request: Request, salt: str) -> URLSafeTimedSerializer:
    """Signs and reads what this app hands the browser (sessions, flashes), under the session
    secret; the salt keeps one kind from being replayed as another."""
    return URLSafeTimedSerializer(session_secret(request.app), salt=salt)


def read_session(request: Request) -> WebSession | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    settings = _settings(request)
    try:
        data = signer(request, "tagwarden.web.session").loads(
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
        signer(request, "tagwarden.web.session").dumps(web.as_payload()),
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
    key = session_secret(request.app).encode()
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
    """The logged-in caller: its session row and its token re-checked on every request."""
    web = read_session(request)
    if web is None or web.token_id is None:
        raise LoginRequired()
    # A short transaction of its own, as the API's bearer check does: no write lock is held for
    # the length of the page's use case. One query checks the session row and the token.
    async with transaction(request.app.state.sessionmaker) as session:
        principal = await principal_for_session(session, web.sid, web.token_id)
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
