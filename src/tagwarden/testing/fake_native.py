"""What the fake's registry-native APIs (Quay, Harbor, GitHub Packages) share: their accounts,
their settings, and how each says "not allowed" in its own words.

The same fake model backs them, so a tag has the same digest whichever API reads it. Their
paths match the percent-encoded request path (Harbor encodes a repository's slashes twice,
GitHub once), so handlers decode what they match.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from tagwarden.testing.fake_hub import json_response

if TYPE_CHECKING:
    from tagwarden.testing.fake_registry import FakeRegistry

NATIVE_PREFIXES = ("quay_", "harbor_", "github_")


@dataclass
class NativeState:
    """Accounts and knobs of the native APIs; set from tests before or while serving."""

    # Bearer tokens the Quay and GitHub APIs accept (token → user); Quay's are OAuth tokens.
    api_tokens: dict[str, str] = field(default_factory=dict)
    # Identity (OAuth2 refresh) tokens the registry's token endpoint takes in a form POST.
    identity_tokens: dict[str, str] = field(default_factory=dict)
    # GitHub owners that are users (reached under /users/…); every other owner is an org.
    github_users: set[str] = field(default_factory=set)
    # GHCR lists an index's platform manifests as untagged versions of their own.
    github_lists_children: bool = True
    github_rate_limit: int | None = 5000  # per hour, as for a personal access token
    github_window: tuple[float, int] = (0.0, 0)
    # Kinds whose API answers 404 as if switched off or not proxied (e.g. {"quay_tags"}).
    disabled: set[str] = field(default_factory=set)

    def add_api_token(self, username: str) -> str:
        token = "fake_" + secrets.token_urlsafe(18)
        self.api_tokens[token] = username
        return token

    def add_identity_token(self, username: str) -> str:
        token = "idt_" + secrets.token_urlsafe(18)
        self.identity_tokens[token] = username
        return token


def is_native(kind: str) -> bool:
    return kind.startswith(NATIVE_PREFIXES)


def identify(fake: FakeRegistry, request: Request, kind: str) -> tuple[bool, str | None]:
    """(may proceed, who): anonymous proceeds (the handler decides what it may see), a
    credential that is not valid does not."""
    authorization = request.headers.get("authorization", "")
    if not authorization:
        return True, None
    scheme, _, credential = authorization.partition(" ")
    if kind.startswith("harbor_"):
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(credential).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        return (True, user) if fake.auth.check_user(user, password) else (False, None)
    bearer = fake.native.api_tokens.get(credential) if scheme.lower() == "bearer" else None
    return bearer is not None, bearer


def quay_error(status: int, detail: str) -> Response:
    """Quay's ``endpoints/exception.py`` body."""
    kinds = {401: "invalid_token", 403: "insufficient_scope", 404: "not_found"}
    error_type = kinds.get(status, "invalid_request")
    return json_response(
        {
            "detail": detail,
            "error_message": detail,
            "error_type": error_type,
            "title": error_type,
            "type": f"http://fake-quay/api/v1/error/{error_type}",
            "status": status,
        },
        status,
    )


def harbor_error(status: int, code: str, message: str) -> Response:
    return json_response({"errors": [{"code": code, "message": message}]}, status)


def github_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest/packages"}
    return json_response(body, status, headers)


def unauthorized(kind: str) -> Response:
    if kind.startswith("quay_"):
        return quay_error(401, "Requires authentication")
    if kind.startswith("harbor_"):
        return harbor_error(401, "UNAUTHORIZED", "unauthorized")
    return github_error(401, "Bad credentials")


def decoded(params: dict[str, str]) -> dict[str, str]:
    return {k: unquote(v) for k, v in params.items()}


def integer(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return None


def digits_of(value: Any) -> int:
    """A stable small number from a digest, for ids the APIs give their entries."""
    return int(str(value).removeprefix("sha256:")[:8], 16)
