"""Rendering pages: the template environment, flash messages, and the route class that turns
a domain error into a page (the API's handler in errors.py answers JSON; people need HTML)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from itsdangerous import BadSignature

from tagwarden.approvals.states import RequestStatus
from tagwarden.auth.secret import resolve_session_secret
from tagwarden.catalogue.states import ImageStatus
from tagwarden.errors import DomainError, error_body
from tagwarden.web.session import (
    FLASH_COOKIE,
    FLASH_SECONDS,
    LoginRequired,
    csrf_token,
    read_session,
    signer,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SOURCES = {"image_monitor": "auto-detected", "manual": "manual", "webhook": "webhook"}


def short_digest(digest: str | None) -> str:
    if not digest:
        return "—"
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest[:19]


def age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            text = f"{seconds // size} {unit}"
            break
    else:
        text = f"{seconds} s"
    return f"in {text}" if future else f"{text} ago"


def timestamp(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def source_label(source: str | None) -> str:
    return SOURCES.get(source or "manual", source or "manual")


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(short_digest=short_digest, age=age, ts=timestamp, source=source_label)
# The state machines' names, so that templates compare with them rather than spell them.
_env.globals.update(ImageStatus=ImageStatus, RequestStatus=RequestStatus)


def _pop_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = signer(request, "tagwarden.web.flash").loads(raw, max_age=FLASH_SECONDS)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def page(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    web = getattr(request.state, "web_session", None) or read_session(request)
    values = {
        "request": request,
        "user": getattr(request.state, "user", None),
        "csrf": csrf_token(request, web) if web else "",
        "flash": _pop_flash(request),
        "path": request.url.path,
        **(context or {}),
    }
    response = HTMLResponse(_env.get_template(name).render(values), status_code=status_code)
    # Pages show live decisions and carry a CSRF token: never serve them from a cache.
    response.headers["Cache-Control"] = "no-store"
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(
    request: Request, url: str, message: str | None = None, level: str = "ok"
) -> RedirectResponse:
    """Post/redirect/get, with a one-shot message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if message:
        response.set_cookie(
            FLASH_COOKIE,
            signer(request, "tagwarden.web.flash").dumps({"level": level, "message": message}),
            max_age=FLASH_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


def back_url(request: Request, default: str = "/") -> str:
    """Where a failed form post returns to: the page it came from, if it is one of ours."""
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc == request.url.netloc and parts.path.startswith("/"):
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return default


class WebRoute(APIRoute):
    """Answers pages' failures as pages: a login redirect, an error page, or back with a note."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        is_json = self.path.endswith(".json")

        async def route(request: Request) -> Response:
            # Sessions, CSRF tokens and flashes are signed with it: read (or made) once per app,
            # here as well as in the lifespan, for apps served without one.
            await resolve_session_secret(request.app)
            try:
                return await handler(request)
            except LoginRequired:
                if is_json:
                    return JSONResponse(error_body("log in first", "unauthorized"), status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            except DomainError as exc:
                if is_json:
                    return JSONResponse(
                        error_body(exc.detail, exc.code), exc.status_code, headers=exc.headers
                    )
                # A refusal (role, CSRF) or a missing page is shown as such; a conflict or bad
                # input on a form sends the person back to the form with the reason.
                if request.method == "POST" and exc.status_code not in (401, 403, 404):
                    return redirect(request, back_url(request), exc.detail, "error")
                return error_page(request, exc.status_code, exc.detail)
            except RequestValidationError as exc:
                parts = [
                    f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
                    for e in exc.errors()
                ]
                if request.method == "POST":
                    return redirect(request, back_url(request), "; ".join(parts), "error")
                return error_page(request, 422, "; ".join(parts))

        return route


def error_page(request: Request, status_code: int, detail: str) -> HTMLResponse:
    return page(request, "error.html", {"status_code": status_code, "detail": detail}, status_code)
