"""Quay (quay.io, Project Quay) through its REST API: ``/api/v1/repository/{repo}/tag/``.

A page gives 100 tags with ``manifest_digest``, ``last_modified`` (the push, RFC 2822 with a
``-0000`` zone) and ``size``; ``has_additional`` says whether another page follows. Platforms
are not in it: a tag the monitor needs them for is resolved through ``/v2`` and keeps Quay's
date. ``/api/v1`` takes an OAuth bearer token (robot accounts only work on ``/v2``); public
repositories answer anonymously.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from tagwarden.registry.base import MalformedResponse, RemoteTag
from tagwarden.registry.manifests import OCI_INDEX
from tagwarden.registry.native import PAGE_SIZE, NativeClient, body_of, size, text
from tagwarden.registry.transport import shown_url

# Quay's own user name for "the password is an OAuth token" on /v2 (docker login -u $oauthtoken).
OAUTH_TOKEN_USER = "$oauthtoken"  # noqa: S105 - a fixed user name, not a secret
MAX_PAGES = 1000  # 100,000 tags: past that a loop, not a repository


def quay_date(value: object) -> datetime | None:
    """``Thu, 02 Nov 2023 10:00:00 -0000`` → aware UTC; the ``start_ts`` seconds otherwise."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise MalformedResponse("a Quay last_modified is not an RFC 2822 date") from exc
    # "-0000" is RFC 2822's "UTC, zone unknown": the stamp is UTC all the same.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_quay_tag(item: Any) -> RemoteTag:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise MalformedResponse("a Quay tag without a name")
    when = quay_date(item.get("last_modified"))
    start = item.get("start_ts")
    if when is None and isinstance(start, int) and not isinstance(start, bool) and start > 0:
        when = datetime.fromtimestamp(start, UTC)
    return RemoteTag(
        name=item["name"],
        digest=text(item.get("manifest_digest")),
        last_updated=when,
        platforms=(),
        resolved=False,  # Quay names no platforms: /v2 does, when they are needed
        full_size=size(item.get("size")),
        media_type=OCI_INDEX if item.get("is_manifest_list") is True else None,
    )


class QuayClient(NativeClient):
    api_name = "Quay"
    newest_first = True  # lifetime_start descending (endpoints/api/tag.py)

    def __init__(self, *args: Any, api_token: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_token = api_token

    async def api_headers(self) -> dict[str, str]:
        token = self.api_token
        if token is None:
            found = await self.load_credentials()
            # A docker login with Quay's $oauthtoken user stored the OAuth token itself.
            if found is not None and found.username == OAUTH_TOKEN_USER:
                token = found.secret
        return {"Authorization": f"Bearer {token}"} if token else {}

    def api_refused(self, response: Any) -> None:
        if self.api_token is None and self.source is not None:
            self.source.forget()

    def tags_url(self, repository: str) -> str:
        return f"{self.api_url}/api/v1/repository/{quote(repository.strip('/'), safe='/')}/tag/"

    async def api_pages(self, repository: str) -> AsyncGenerator[list[RemoteTag], None]:
        url = self.tags_url(repository)
        for page in range(1, MAX_PAGES + 1):
            params = {"limit": str(PAGE_SIZE), "page": str(page), "onlyActiveTags": "true"}
            body = body_of(await self.api_get(url, first=page == 1, params=params))
            tags = body.get("tags") if isinstance(body, dict) else None
            if not isinstance(tags, list):
                raise MalformedResponse(f"{shown_url(url)}: no tags list", url=url)
            yield [parse_quay_tag(item) for item in tags]
            if body.get("has_additional") is not True or not tags:
                return
        raise MalformedResponse(f"{shown_url(url)}: more than {MAX_PAGES} pages", url=url)
