"""What the registry-native listing clients (Quay, Harbor, GitHub) share.

Each is an OCI client (manifests, blobs, signatures and sizes still go through ``/v2``) whose
listing comes from the registry's own API: digest, push date and size for up to 100 tags a
request instead of a ``HEAD`` per tag. When that API refuses (401, 403 or 404 on its first
page: no token, a token without the scope, an API switched off or a proxy that does not pass
it), the listing falls back to ``tags/list`` for that scan.

Dates are the registry's push time, never an image's own ``created``: a tag the API listed and
the monitor then resolves through ``/v2`` keeps the date the API gave it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urljoin

import httpx

from tagwarden.references import is_signature_tag
from tagwarden.registry.allowlist import origin
from tagwarden.registry.base import (
    AuthenticationFailed,
    ImageNotFound,
    MalformedResponse,
    RemoteTag,
    TagNames,
)
from tagwarden.registry.credentials import CredentialedOciClient
from tagwarden.registry.transport import json_body, shown_url, unexpected
from tagwarden.remote import reason

log = logging.getLogger("tagwarden.registry")

REFUSALS = frozenset({401, 403, 404})
PAGE_SIZE = 100  # the most each of the three APIs gives in one page


class ApiRefused(Exception):
    """The native API said no on the first page: list through ``/v2`` instead."""

    def __init__(self, status: int) -> None:
        super().__init__(reason(status))
        self.status = status


class NativeClient(CredentialedOciClient):
    """An OCI client that lists through ``api_url``; subclasses give the pages."""

    api_name = "native"
    # Whether the API lists newest push first, so that paging may stop at the first tag seen
    # before with the same digest (a re-push or a moved tag is a new push and sorts first).
    newest_first = False

    def __init__(self, *args: Any, api_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_url = api_url.rstrip("/")
        # What the API said of each listed tag, so a tag resolved through /v2 keeps its date.
        self.listed: dict[tuple[str, str], RemoteTag] = {}
        self.fell_back: set[str] = set()

    def api_pages(self, repository: str) -> AsyncGenerator[list[RemoteTag], None]:
        raise NotImplementedError

    async def api_headers(self) -> dict[str, str]:
        """The API's Authorization (and whatever else it wants) for the next request."""
        return {}

    def api_refused(self, response: httpx.Response) -> None:
        """Told when the API answered 401: a helper's credentials are asked for again."""

    async def iter_tags(
        self,
        repository: str,
        known: Mapping[str, str | None],
        *,
        worth: Callable[[str], bool] | None = None,
    ) -> AsyncIterator[RemoteTag]:
        """The API's pages carry every tag's digest, so ``worth`` matters only to the /v2
        listing a refused API falls back to."""
        names = TagNames(repository)
        pages = self.api_pages(repository)
        try:
            try:
                page = await anext(pages, None)
            except ApiRefused as refused:
                log.info("%s: the %s API refused (%s); listing through /v2 instead",
                         repository, self.api_name, refused)  # fmt: skip
                self.fell_back.add(repository)
                async for tag in super().iter_tags(repository, known, worth=worth):
                    yield tag
                return
            ordered = self.newest_first
            previous: RemoteTag | None = None
            while page is not None:
                for tag in page:
                    if is_signature_tag(tag.name) or not names.admit(tag.name):
                        continue
                    ordered = ordered and _in_order(previous, tag)
                    previous = tag
                    self.listed[(repository, tag.name)] = tag
                    yield tag
                    if ordered and tag.digest and known.get(tag.name) == tag.digest:
                        return  # everything after it was seen already, unchanged
                page = await anext(pages, None)
        finally:
            names.report()
            await pages.aclose()

    async def resolve_tag(self, repository: str, tag: str) -> RemoteTag:
        """Platforms from ``/v2``; date and size from the listing when it was the same digest."""
        resolved = await super().resolve_tag(repository, tag)
        listed = self.listed.get((repository, tag))
        if listed is None or listed.digest != resolved.digest:
            return resolved
        return dataclasses.replace(
            resolved,
            last_updated=listed.last_updated or resolved.last_updated,
            full_size=listed.full_size if listed.full_size is not None else resolved.full_size,
            evidence=listed.evidence,
        )

    async def api_get(
        self, url: str, *, first: bool, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET on the API with its credentials; a refusal of the first page is ApiRefused.

        A 401 is asked once more with fresh credentials (a helper's may have been rotated).
        """
        if origin(url) != origin(self.api_url):
            # A next-page link elsewhere would take our token with it.
            raise MalformedResponse(f"{shown_url(url)}: a page outside {self.api_name}'s API")
        for again in (False, True):
            headers = await self.api_headers()
            try:
                response = await self.transport.send("GET", url, headers=headers, params=params)
            except ImageNotFound:
                if first:
                    raise ApiRefused(404) from None
                raise
            if response.status_code == 401 and not again and headers.get("Authorization"):
                self.api_refused(response)
                continue
            if response.status_code in REFUSALS:
                if first:
                    raise ApiRefused(response.status_code)
                raise AuthenticationFailed(
                    f"GET {shown_url(url)}: {reason(response.status_code)}",
                    url=url,
                    status=response.status_code,
                )
            if response.status_code != 200:
                raise unexpected(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def next_link(self, response: httpx.Response) -> str | None:
        link = response.links.get("next", {}).get("url")
        return urljoin(str(response.request.url), link) if link else None


def _in_order(previous: RemoteTag | None, tag: RemoteTag) -> bool:
    """Whether ``tag`` may follow ``previous`` in a newest-first listing; a listing that is not
    (an API changed its order) is read to its end rather than trusted."""
    if previous is None:
        return True
    if previous.last_updated is None or tag.last_updated is None:
        return False
    return tag.last_updated <= previous.last_updated


def body_of(response: httpx.Response) -> Any:
    return json_body(response)


def text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def size(value: object) -> int | None:
    # bool is an int to Python, not a size to anyone.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
