"""Logging in with an API token, and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from tagwarden.auth.service import authenticate
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
    next: Annotated[str, Form()] = "/approvals",
) -> Response:
    await check_csrf(request)
    async with transaction(request.app.state.sessionmaker) as session:
        principal = await authenticate(session, token.strip())
    if principal is None:
        return page(
            request,
            "login.html",
            {"next": _safe_next(next), "error": "That token is not valid, or it was revoked."},
            status_code=401,
        )
    response = redirect(request, _safe_next(next), f"Signed in as {principal.identity}")
    write_session(request, response, new_session(principal))
    return response


@router.post("/logout")
async def logout(request: Request, _: PostingUser) -> Response:
    response = redirect(request, "/login", "Signed out")
    clear_session(request, response)
    return response
