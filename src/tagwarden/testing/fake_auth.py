"""Accounts and tokens of the fake registry: Hub JWTs, registry bearer tokens, Basic auth."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Literal

from starlette.requests import Request

from tagwarden.clock import Clock

HUB_TOKEN_SECONDS = 600  # Hub sign-in tokens are "valid 10 minutes"
OCI_TOKEN_SECONDS = 300
OciAuth = Literal["bearer", "basic", "none"]


class FakeAuth:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.users: dict[str, str] = {}
        self._hub_tokens: dict[str, tuple[str, float]] = {}
        self._oci_tokens: dict[str, tuple[str | None, frozenset[str], float]] = {}

    def check_user(self, username: str, password: str) -> bool:
        expected = self.users.get(username)
        return expected is not None and secrets.compare_digest(expected, password)

    def issue_hub_token(self, username: str) -> str:
        """A JWT-shaped token (header.claims.signature); only its presence here makes it valid."""
        claims = {"sub": username, "exp": int(self.clock.now()) + HUB_TOKEN_SECONDS}
        token = ".".join(
            base64.urlsafe_b64encode(part).decode().rstrip("=")
            for part in (
                b'{"alg":"RS256","typ":"JWT"}',
                json.dumps(claims).encode(),
                secrets.token_bytes(32),
            )
        )
        self._hub_tokens[token] = (username, self.clock.now() + HUB_TOKEN_SECONDS)
        return token

    def issue_oci_token(self, username: str | None, granted: frozenset[str]) -> tuple[str, int]:
        token = secrets.token_urlsafe(24)
        self._oci_tokens[token] = (username, granted, self.clock.now() + OCI_TOKEN_SECONDS)
        return token, OCI_TOKEN_SECONDS

    def identify(
        self, request: Request, kind: str, repository: str | None, oci_auth: OciAuth
    ) -> tuple[bool, str | None]:
        """(may proceed, who) for this request; handlers decide per-repository visibility."""
        authorization = request.headers.get("authorization", "")
        scheme, _, credential = authorization.partition(" ")
        scheme = scheme.lower()
        now = self.clock.now()
        if kind.startswith("hub_"):
            if kind == "hub_login" or not authorization:
                return True, None
            hub_token = self._hub_tokens.get(credential) if scheme == "bearer" else None
            if hub_token is None or hub_token[1] <= now:
                return False, None
            return True, hub_token[0]
        if kind == "oci_token":
            return True, self._basic_user(scheme, credential)
        if oci_auth == "none":
            return True, None
        if oci_auth == "basic":
            user = self._basic_user(scheme, credential)
            return user is not None, user
        oci_token = self._oci_tokens.get(credential) if scheme == "bearer" else None
        if oci_token is None or oci_token[2] <= now:
            return False, None
        username, granted, _ = oci_token
        if repository is not None and repository not in granted:
            return False, username
        return True, username

    def _basic_user(self, scheme: str, credential: str) -> str | None:
        if scheme != "basic":
            return None
        try:
            user, _, password = base64.b64decode(credential).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user if self.check_user(user, password) else None
