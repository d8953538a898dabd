"""Logging in with an API token, and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from tagwarden.auth import throttle
from tagwarden.auth.deps import AppSettings, Sessions
from tagwarden.auth.service import authenticate, end_web_session, start_web_session
from tagwarden.db import transaction
from tagwarden.web.render import WebRoute, page, redirect
from tagwarden.web.session import (
    PostingUser,
    WebUser,
    check_csrf,
    clear_session,
    new_session,
    read_session,
    write_session,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only a path on this server: "//evil.example" or "https://…" would be an open redirect.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/approvals"


@router.get("/")
async def home(_: WebUser) -> RedirectResponse:
    return RedirectResponse("/approvals", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    # A session id before login, so the login form has a CSRF token too (login CSRF).
    web = read_session(request)
    fresh = web is None
    if web is None:
        web = new_session()
        request.state.web_session = web
    response = page(request, "login.html", {"next": _safe_next(next), "error": None})
    if fresh:
        write_session(request, response, web)
    return response


@router.post("/login")
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    sessions: Sessions,
    settings: AppSettings,
    next: Annotated[str, Form()] = "/approvals",
) -> Response:
    await check_csrf(request)
    web = None
    async with transaction(sessions) as session:
        principal = await authenticate(session, token.strip())
        if principal is not None and principal.token_id is not None:
            # A fresh id on the server too: the session lives as long as this row.
            web = new_session(principal)
            await start_web_session(
                session,
                web.sid,
                principal.token_id,
                hours=settings.web_session_hours,
            )
    if principal is None or web is None:
        context = {"next": _safe_next(next), "error": "That token is not valid, or it was revoked."}
        try:
            throttle.failed(request)
        except throttle.TooManyFailures as exc:
            context["error"] = (
                "Too many failed sign-ins from your address. "
                f"Wait {exc.retry_after} seconds, then try again."
            )
            refused = page(request, "login.html", context, status_code=429)
            refused.headers.update(exc.headers or {})
            return refused
        return page(request, "login.html", context, status_code=401)
    response = redirect(request, _safe_next(next), f"Signed in as {principal.identity}")
    write_session(request, response, web)
    return response


@router.post("/logout")
async def logout(request: Request, _: PostingUser, sessions: Sessions) -> Response:
    # The row goes, so this cookie (and any copy of it, and its CSRF token) is refused hereafter.
    async with transaction(sessions) as session:
        await end_web_session(session, request.state.web_session.sid)
    response = redirect(request, "/login", "Signed out")
    clear_session(request, response)
    return response
