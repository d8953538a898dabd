"""GitHub's container registry (ghcr.io) through the Packages REST API.

``/{orgs|users}/{owner}/packages/container/{name}/versions`` lists versions: ``name`` is the
manifest digest, ``updated_at`` the push, ``metadata.container.tags`` the tags naming it. This
fixes GHCR's missing dates: ``/v2`` has none but an image's own ``created``. The API is on
another host than ghcr.io (``api_url``), wants a token with ``read:packages`` (no anonymous
access, even to public images), and pages by ``Link``. Whether the owner is an organisation
or a user is found once (``/orgs`` first, ``/users`` on a 404) and remembered.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from tagwarden.registry.base import (
    AuthenticationFailed,
    MalformedResponse,
    RateLimited,
    RemoteTag,
    parse_timestamp,
)
from tagwarden.registry.native import PAGE_SIZE, ApiRefused, NativeClient, body_of, text
from tagwarden.registry.transport import host_of, shown_url

MAX_PAGES = 1000
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
OWNER_KINDS = ("orgs", "users")
# (api_url, owner) → "orgs" or "users", for the process: the answer does not change.
_owner_kinds: dict[tuple[str, str], str] = {}


def parse_version(version: Any) -> list[RemoteTag]:
    """One package version → a RemoteTag per tag (none for an untagged platform manifest)."""
    if not isinstance(version, dict) or not isinstance(version.get("name"), str):
        raise MalformedResponse("a package version without a name")
    metadata = version.get("metadata")
    container = metadata.get("container") if isinstance(metadata, dict) else None
    tags = container.get("tags") if isinstance(container, dict) else None
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise MalformedResponse("a package version whose tags are not names")
    when = parse_timestamp(version.get("updated_at") or version.get("created_at"))
    digest = text(version["name"]) if version["name"].startswith("sha256:") else None
    # No platforms (and no size) in the API: /v2 gives them for the tags the monitor asks about.
    return [RemoteTag(tag, digest, when, (), resolved=False) for tag in tags]


class GitHubClient(NativeClient):
    api_name = "GitHub Packages"

    def __init__(self, *args: Any, api_token: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_token = api_token

    async def api_headers(self) -> dict[str, str]:
        token = self.api_token
        if token is None:
            found = await self.load_credentials()
            # A ghcr.io login's password is the token (a PAT with read:packages).
            token = found.secret if found is not None and not found.is_identity_token else None
        return {**HEADERS, "Authorization": f"Bearer {token}"} if token else dict(HEADERS)

    def api_refused(self, response: Any) -> None:
        if self.api_token is None and self.source is not None:
            self.source.forget()

    def versions_url(self, kind: str, owner: str, package: str) -> str:
        return (
            f"{self.api_url}/{kind}/{quote(owner, safe='')}/packages/container/"
            f"{quote(package, safe='')}/versions"
        )

    async def api_pages(self, repository: str) -> AsyncGenerator[list[RemoteTag], None]:
        owner, _, package = repository.strip("/").partition("/")
        if not package:
            raise MalformedResponse(f"{repository}: a GHCR repository is owner/name")
        headers = await self.api_headers()
        if "Authorization" not in headers:
            raise ApiRefused(401)  # no token: the API would refuse; ask nothing
        response = await self._first_page(owner, package)
        for _ in range(MAX_PAGES):
            body = body_of(response)
            if not isinstance(body, list):
                raise MalformedResponse(f"{shown_url(response.request.url)}: not a list")
            yield [tag for version in body for tag in parse_version(version)]
            # Observed links name /organizations/{id}/…: followed as given, on the API's host.
            url = self.next_link(response)
            if url is None:
                return
            response = await self._get(url, first=False)
        raise MalformedResponse(f"{shown_url(self.api_url)}: more than {MAX_PAGES} pages")

    async def _first_page(self, owner: str, package: str) -> httpx.Response:
        params = {"per_page": str(PAGE_SIZE), "state": "active"}
        remembered = _owner_kinds.get((self.api_url, owner))
        kinds = (remembered,) if remembered else OWNER_KINDS
        refused: ApiRefused | None = None
        for kind in kinds:
            try:
                response = await self._get(
                    self.versions_url(kind, owner, package), first=True, params=params
                )
            except ApiRefused as exc:
                refused = exc
                if exc.status != 404:
                    raise  # the token is wrong, not the owner's kind
                continue
            _owner_kinds[(self.api_url, owner)] = kind
            return response
        assert refused is not None
        raise refused

    async def _get(
        self, url: str, *, first: bool, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            return await self.api_get(url, first=first, params=params)
        except (ApiRefused, AuthenticationFailed) as exc:
            # GitHub's primary limit answers 403 with x-ratelimit-remaining 0: a wait, not a no.
            limited = self._limited(exc)
            if limited is None:
                raise
            raise limited from None

    def _limited(self, exc: ApiRefused | AuthenticationFailed) -> RateLimited | None:
        limiter = self.transport.state.limits.for_host(host_of(self.api_url))
        if exc.status != 403 or limiter.remaining() != 0:
            return None
        reset = limiter.requests.reset_at
        when = reset if reset is not None else self.transport.state.clock.now() + 60
        return RateLimited(
            "GitHub's API rate limit is spent", retry_at=datetime.fromtimestamp(when, UTC)
        )
