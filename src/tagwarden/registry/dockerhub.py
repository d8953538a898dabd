"""Docker Hub through its Hub API, which gives digest, platforms and date for 100 tags a request.

The registry API (registry-1.docker.io) would need a manifest GET per tag for the same facts,
and GETs count against the pull limit; the Hub API costs none.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from itertools import pairwise
from typing import Any
from urllib.parse import quote

from tagwarden.catalogue.references import is_tag
from tagwarden.registry.allowlist import origin
from tagwarden.registry.base import (
    AuthenticationFailed,
    ImageNotFound,
    MalformedResponse,
    RemoteTag,
    TagNames,
    platforms_from,
    refuse_bad_tag,
)
from tagwarden.registry.base import parse_timestamp as _timestamp
from tagwarden.registry.transport import (
    Transport,
    host_of,
    json_object,
    shown_url,
    unexpected,
)
from tagwarden.remote import reason

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # the Hub API's maximum
# Hub JWTs live 10 minutes; re-signing a little early avoids a 401 round trip.
TOKEN_LIFETIME = 540.0
_OFFSET_LIMIT_MARKER = "pagination offset too large"


def parse_hub_tag(item: Any) -> RemoteTag:
    """One entry of ``results[]`` (or the single-tag endpoint) → a resolved RemoteTag.

    Errors name the tag only when it is of the tag grammar: the entry is the registry's text.
    """
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise MalformedResponse("a tag entry without a name")
    label = f"tag {item['name']!r}" if is_tag(item["name"]) else "a tag"
    images = item.get("images") or []
    if not isinstance(images, list):
        # The published schema says object; real responses send a list. Anything else is junk.
        raise MalformedResponse(f"{label}: images is not a list")
    rows = []
    for image in images:
        if not isinstance(image, dict) or not isinstance(image.get("architecture"), str):
            raise MalformedResponse(f"{label}: image entry without architecture")
        size = image.get("size")
        rows.append(
            (
                image["architecture"],
                str(image.get("os") or "linux"),
                image.get("variant") if isinstance(image.get("variant"), str) else None,
                image.get("digest") if isinstance(image.get("digest"), str) else None,
                size if isinstance(size, int) else None,
            )
        )
    digest = item.get("digest")
    return RemoteTag(
        name=item["name"],
        digest=digest if isinstance(digest, str) and digest else None,
        last_updated=_timestamp(item.get("last_updated") or item.get("tag_last_pushed")),
        platforms=platforms_from(rows),
        resolved=True,
    )


class DockerHubClient:
    """Lists tags newest first and stops at the first tag it already knows unchanged.

    That is what makes a rescan of an unchanged repository one request: a re-pushed tag gets a
    new ``last_updated`` and so sorts before every unchanged one.
    """

    def __init__(
        self,
        transport: Transport,
        api_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.transport = transport
        self.api_url = api_url.rstrip("/")
        self.username = username
        self.password = password

    def budget(self) -> int | None:
        return self.transport.state.limits.for_host(host_of(self.api_url)).remaining()

    def tags_url(self, repository: str) -> str:
        return (
            f"{self.api_url}/v2/repositories/{_path(repository)}/tags/"
            f"?page_size={PAGE_SIZE}&ordering=last_updated"
        )

    async def iter_tags(
        self, repository: str, known: Mapping[str, str | None]
    ) -> AsyncIterator[RemoteTag]:
        """Tags newest first, up to and including the first one in ``known`` with its digest.

        A tag in ``known`` whose digest changed is yielded and paging goes on. If the Hub API
        turns out not to be sorting newest first (its ``ordering`` is undocumented), early
        stopping is switched off for the rest of the scan rather than trusted.
        """
        names = TagNames(repository)
        try:
            async for tag in self._iter_tags(repository, known, names):
                yield tag
        finally:
            names.report()  # one warning per listing, however it ended

    async def _iter_tags(
        self, repository: str, known: Mapping[str, str | None], names: TagNames
    ) -> AsyncIterator[RemoteTag]:
        url: str | None = self.tags_url(repository)
        page = 0
        ordered = True
        previous: list[RemoteTag] = []
        while url is not None:
            page += 1
            try:
                body = await self._get_json(url)
            except ImageNotFound:
                if page == 1:
                    raise
                break  # tags deleted while we paged shortened the list; we have seen it all
            except _OffsetLimitError:
                log.warning(
                    "%s: Docker Hub refuses anonymous paging past 1,000 tags; "
                    "set TAGWARDEN_DOCKERHUB_USERNAME/PASSWORD to see older ones",
                    repository,
                )
                break
            results = body.get("results")
            if not isinstance(results, list):
                raise MalformedResponse(f"{shown_url(url)}: no results list", url=url)
            # A name outside the grammar is dropped before anything else is read of its entry.
            tags = [
                parse_hub_tag(item)
                for item in results
                if not (isinstance(item, dict) and isinstance(item.get("name"), str))
                or names.admit(item["name"])
            ]
            # Check the whole page before trusting it: sorted oldest first, the first tag
            # would already be a known one and we would stop before seeing anything new.
            if ordered and any(_newer(b, a) for a, b in pairwise([*previous, *tags])):
                ordered = False
                log.warning("%s: Hub API tags not newest first; reading every page", repository)
            previous = tags[-1:]
            for tag in tags:
                yield tag
                if ordered and tag.name in known and known[tag.name] == tag.digest:
                    return
            next_url = body.get("next")
            if next_url is not None and not isinstance(next_url, str):
                raise MalformedResponse(f"{shown_url(url)}: next is not a URL", url=url)
            if next_url and origin(next_url) != origin(self.api_url):
                # The next page is on the Hub API itself; anywhere else is not ours to visit.
                raise MalformedResponse(
                    f"{shown_url(url)}: the next page is on another host", url=url
                )
            url = next_url or None

    async def resolve_tag(self, repository: str, tag: str) -> RemoteTag:
        refuse_bad_tag(repository, tag)
        url = f"{self.api_url}/v2/repositories/{_path(repository)}/tags/{quote(tag, safe='')}"
        return parse_hub_tag(await self._get_json(url))

    async def _get_json(self, url: str) -> dict[str, Any]:
        # `next` is an absolute URL from the response: never hand the JWT to another host.
        same_host = host_of(url) == host_of(self.api_url)
        for fresh_token in (False, True):
            headers = await self._auth_headers(refresh=fresh_token) if same_host else {}
            response = await self.transport.send("GET", url, headers=headers)
            if response.status_code == 401 and headers and not fresh_token:
                continue  # the token died early (revoked, clock skew): sign in once more
            if response.status_code == 403 and _OFFSET_LIMIT_MARKER in response.text:
                raise _OffsetLimitError()
            if response.status_code in (401, 403):
                raise AuthenticationFailed(
                    f"Docker Hub refused {shown_url(url)}: {reason(response.status_code)}",
                    url=url,
                    status=response.status_code,
                )
            if response.status_code != 200:
                raise unexpected(response)
            return json_object(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _auth_headers(self, *, refresh: bool) -> dict[str, str]:
        if not (self.username and self.password):
            return {}
        state = self.transport.state
        key = ("dockerhub", self.api_url, self.username)
        if refresh:
            state.tokens.drop(key)
        # Concurrent scans at start-up would otherwise each sign in.
        async with state.tokens.lock(key):
            token = state.tokens.get(key, state.clock.now())
            if token is None:
                token = await self._sign_in()
                state.tokens.put(key, token, expires_at=state.clock.now() + TOKEN_LIFETIME)
        return {"Authorization": f"Bearer {token}"}

    async def _sign_in(self) -> str:
        url = f"{self.api_url}/v2/auth/token"
        response = await self.transport.send(
            "POST", url, json_payload={"identifier": self.username, "secret": self.password}
        )
        if response.status_code in (401, 403):
            raise AuthenticationFailed(
                f"Docker Hub sign-in refused for {self.username}: {reason(response.status_code)}",
                url=url,
                status=response.status_code,
            )
        if response.status_code != 200:
            raise unexpected(response)
        token = json_object(response).get("access_token")
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                f"{shown_url(url)}: no access_token in sign-in response", url=url
            )
        return token


class _OffsetLimitError(Exception):
    """Hub's 403 for anonymous paging past offset 1,000."""


def _newer(tag: RemoteTag, previous: RemoteTag) -> bool:
    return (
        tag.last_updated is not None
        and previous.last_updated is not None
        and tag.last_updated > previous.last_updated
    )


def _path(repository: str) -> str:
    repository = repository.strip("/")
    if "/" not in repository:
        repository = f"library/{repository}"  # how Hub names official images
    return quote(repository, safe="/")
