"""Docker Hub through its Hub API, which gives digest, platforms and date for 100 tags a request.

The registry API (registry-1.docker.io) would need a manifest GET per tag for the same facts,
and GETs count against the pull limit; the Hub API costs none.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from itertools import pairwise
from typing import Any
from urllib.parse import quote

from tagwarden.references import is_tag
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
from tagwarden.registry.manifests import INDEX_TYPES
from tagwarden.registry.oci import OciClient
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
DEFAULT_REGISTRY_URL = "https://registry-1.docker.io"
# Hub JWTs live 10 minutes; re-signing a little early avoids a 401 round trip.
TOKEN_LIFETIME = 540.0
_OFFSET_LIMIT_MARKER = "pagination offset too large"


def parse_hub_tag(item: Any) -> RemoteTag:
    """One entry of ``results[]`` (or the single-tag endpoint) → a resolved RemoteTag.

    An entry without a top-level ``digest`` (2021 single-arch captures; ``rust:1.44.0-slim``
    today) of one image is that image: its ``images[0].digest`` is the tag's digest. Of several
    images it is an index the Hub API does not name: the tag comes back with its platforms and
    no digest, for :meth:`DockerHubClient.tag_digest` to ask the registry when it matters.

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
        rows.append(
            (
                image["architecture"],
                str(image.get("os") or "linux"),
                image.get("variant") if isinstance(image.get("variant"), str) else None,
                _text(image.get("digest")),
                _size(image.get("size")),
            )
        )
    media_type = _text(item.get("media_type"))
    digest = _text(item.get("digest"))
    if digest is None and len(rows) == 1 and media_type not in INDEX_TYPES:
        digest = rows[0][3]  # one image manifest, not an index of one
    return RemoteTag(
        name=item["name"],
        digest=digest,
        last_updated=_timestamp(item.get("last_updated") or item.get("tag_last_pushed")),
        platforms=platforms_from(rows),
        resolved=True,
        full_size=_size(item.get("full_size")),
        media_type=media_type,
        pushed_by=_text(item.get("last_updater_username")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _size(value: object) -> int | None:
    # bool is an int to Python, not a size to anyone.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


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
        registry_url: str = DEFAULT_REGISTRY_URL,
    ) -> None:
        self.transport = transport
        self.api_url = api_url.rstrip("/")
        self.username = username
        self.password = password
        # Docker Hub's registry API, for the one thing the Hub API sometimes leaves out: an
        # index's digest. A HEAD there costs no pull; the same account signs in on both.
        self.registry = OciClient(transport, registry_url, username=username, password=password)

    def budget(self) -> int | None:
        return self.transport.state.limits.for_host(host_of(self.api_url)).remaining()

    def tags_url(self, repository: str) -> str:
        return (
            f"{self.api_url}/v2/repositories/{_path(repository)}/tags/"
            f"?page_size={PAGE_SIZE}&ordering=last_updated"
        )

    async def iter_tags(
        self,
        repository: str,
        known: Mapping[str, str | None],
        *,
        worth: Callable[[str], bool] | None = None,
    ) -> AsyncIterator[RemoteTag]:
        """Tags newest first, up to and including the first one in ``known`` with its digest.

        ``worth`` is not needed: a page of the Hub API gives every tag's details at once.

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
                if ordered and tag.name in known and _unchanged(tag, known[tag.name]):
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

    async def tag_digest(self, repository: str, tag: str) -> str:
        """The digest of a tag whose Hub API entry has none: one HEAD on Docker Hub's registry
        (its bearer-token flow, through the OCI client), which costs no pull."""
        refuse_bad_tag(repository, tag)
        return await self.registry.tag_digest(_repository(repository), tag)

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


def _unchanged(tag: RemoteTag, known_digest: str | None) -> bool:
    """Whether a listed tag is the one last seen under its name: where paging may stop.

    An entry without a digest is an old push (the Hub API names the digest of what is pushed
    now), so a known tag listed that way is taken as unchanged: asking the registry for its
    digest on every rescan would cost a request each time for nothing. The monitor compares
    its platforms with what was seen.
    """
    return tag.digest == known_digest or (tag.digest is None and bool(tag.platforms))


def _newer(tag: RemoteTag, previous: RemoteTag) -> bool:
    return (
        tag.last_updated is not None
        and previous.last_updated is not None
        and tag.last_updated > previous.last_updated
    )


def _repository(repository: str) -> str:
    repository = repository.strip("/")
    if "/" not in repository:
        repository = f"library/{repository}"  # how Hub names official images
    return repository


def _path(repository: str) -> str:
    return quote(_repository(repository), safe="/")
