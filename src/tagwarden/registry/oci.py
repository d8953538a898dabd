"""Any OCI distribution v2 registry: ghcr.io, quay.io, self-hosted ``registry:2``, Harbor…

Discovery is by ``tags/list`` plus one manifest HEAD per tag worth one (``worth``: the monitor
names new tags its filters want and the tags it tracks; the others cost nothing). A HEAD gives the
digest and, on Docker's registries, is not counted as a pull; a GET is. Platforms and dates need
GETs (the index, one platform manifest, one config blob), so they are fetched only when asked for,
and what is read by digest is read once per client (content-addressed, so it never goes stale):

* ``resolve_tag`` always returns the full detail;
* ``iter_tags`` yields ``resolved=False`` tags (name and digest) unless the client was built with
  ``resolve_changed=True``, in which case tags that are new or whose digest differs from
  ``known`` are resolved as they are found. Leave it off for big repositories on pull-limited
  registries: a first scan would then cost about two pulls per tag.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urljoin

import httpx

from tagwarden.platforms import normalise_architecture
from tagwarden.references import is_signature_tag
from tagwarden.registry import tokens
from tagwarden.registry.allowlist import origin
from tagwarden.registry.auth import parse_challenges
from tagwarden.registry.base import (
    AuthenticationFailed,
    ImageNotFound,
    MalformedResponse,
    Platform,
    RemoteTag,
    TagNames,
    platforms_from,
    refuse_bad_tag,
)
from tagwarden.registry.manifests import (
    ACCEPT,
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    OCI_INDEX,
    ImageBlobs,
    ImageConfig,
    ImageManifest,
    media_type_of,
    parse_image_blobs,
    parse_image_config,
    parse_image_manifest,
    parse_index,
    pick_representative,
    sha256_digest,
)
from tagwarden.registry.transport import (
    Transport,
    host_of,
    json_object,
    shown_url,
    unexpected,
)
from tagwarden.remote import reason

log = logging.getLogger(__name__)

# Manifests and configs kept per client (one check of one image): enough for every platform of
# a few hundred distinct digests, bounded so a huge first scan cannot hold them all.
CACHE_ENTRIES = 2048
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlatformBlobs:
    """One platform of a tag: its manifest's digest and the blobs that manifest lists."""

    digest: str
    blobs: ImageBlobs


class OciClient:
    def __init__(
        self,
        transport: Transport,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        resolve_changed: bool = False,
        head_concurrency: int = 8,
        page_size: int = 100,
    ) -> None:
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.resolve_changed = resolve_changed
        self.head_concurrency = max(1, head_concurrency)
        self.page_size = page_size
        self._manifests: dict[str, tuple[dict[str, Any], str]] = {}  # digest → (body, type)
        self._configs: dict[str, ImageConfig] = {}

    def budget(self) -> int | None:
        limiter = self.transport.state.limits.for_host(host_of(self.base_url))
        pulls = limiter.remaining(pulls=True)
        return pulls if pulls is not None else limiter.remaining()

    # -- discovery ---------------------------------------------------------------------------

    async def iter_tags(
        self,
        repository: str,
        known: Mapping[str, str | None],
        *,
        worth: Callable[[str], bool] | None = None,
    ) -> AsyncIterator[RemoteTag]:
        """Every tag in the registry's (lexical) order; those ``worth`` a HEAD (all, without
        it) with their digest from one, the others with their ``known`` digest, unasked.

        HEADs start while later pages are still being listed and run ``head_concurrency`` at a
        time; results come out in listing order.
        """
        limit = asyncio.Semaphore(self.head_concurrency)
        pending: deque[asyncio.Future[RemoteTag | None]] = deque()
        window = self.head_concurrency * 4  # enough queued work to keep every slot busy
        try:
            async for name in self.list_tags(repository):
                if is_signature_tag(name):
                    continue  # a signature or referrer list: not worth a HEAD, never an image
                if worth is not None and not worth(name):
                    pending.append(_settled(RemoteTag(name, known.get(name), None, (), False)))
                else:
                    head = self._discover(repository, name, known, limit)
                    pending.append(asyncio.ensure_future(head))
                if len(pending) >= window:
                    found = await pending.popleft()
                    if found is not None:
                        yield found
            while pending:
                found = await pending.popleft()
                if found is not None:
                    yield found
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def list_tags(self, repository: str) -> AsyncIterator[str]:
        """Every tag name of the grammar; names outside it are dropped with one warning."""
        names = TagNames(repository)
        try:
            async for tag in self._list_tags(repository):
                if names.admit(tag):
                    yield tag
        finally:
            names.report()

    async def _list_tags(self, repository: str) -> AsyncIterator[str]:
        url: str | None = f"{self._repo_url(repository)}/tags/list?n={self.page_size}"
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise MalformedResponse(f"tag list pagination loops at {shown_url(url)}", url=url)
            seen.add(url)
            response = await self._request("GET", url, repository)
            if response.status_code != 200:
                raise unexpected(response)
            tags = json_object(response).get("tags") or []  # distribution sends null when empty
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise MalformedResponse(f"{shown_url(url)}: tags is not a list of names", url=url)
            for tag in tags:
                yield tag
            link = response.links.get("next", {}).get("url")
            # distribution sends a path ("/v2/…?last=…"), resolved against the registry; Quay
            # an absolute URL, which must be the registry itself: our credentials go with it.
            url = urljoin(url, link) if link else None
            if url is not None and origin(url) != origin(self.base_url):
                raise MalformedResponse(
                    f"{shown_url(self._repo_url(repository))}/tags/list: "
                    "the Link to the next page names another host",
                    url=self.base_url,
                )

    async def head_digest(self, repository: str, reference: str) -> str | None:
        url = f"{self._repo_url(repository)}/manifests/{quote(reference, safe=':')}"
        response = await self._request("HEAD", url, repository, accept=ACCEPT)
        if response.status_code != 200:
            raise unexpected(response)
        digest: str | None = response.headers.get("docker-content-digest")
        return digest

    async def tag_digest(self, repository: str, tag: str) -> str:
        """The tag's own digest (its index's, for a multi-platform tag) from one HEAD."""
        refuse_bad_tag(repository, tag)
        digest = await self.head_digest(repository, tag)
        if not digest:
            raise MalformedResponse(f"{repository}:{tag}: no Docker-Content-Digest on a HEAD")
        return digest

    async def _discover(
        self,
        repository: str,
        name: str,
        known: Mapping[str, str | None],
        limit: asyncio.Semaphore,
    ) -> RemoteTag | None:
        async with limit:
            try:
                digest = await self.head_digest(repository, name)
                changed = name not in known or known[name] != digest
                if digest is None or (self.resolve_changed and changed):
                    # A registry that leaves Docker-Content-Digest off its HEADs (against the
                    # spec) can only be read with a GET. Otherwise resolve by digest, so a push
                    # between the HEAD and the GET cannot mix two images.
                    return await self._resolve(repository, digest or name, name)
            except ImageNotFound:
                log.info("%s:%s disappeared between listing and HEAD", repository, name)
                return None
        return RemoteTag(name, digest, None, (), resolved=False)

    # -- resolution --------------------------------------------------------------------------

    async def resolve_tag(self, repository: str, tag: str) -> RemoteTag:
        refuse_bad_tag(repository, tag)
        return await self._resolve(repository, tag, tag)

    async def _resolve(self, repository: str, reference: str, name: str) -> RemoteTag:
        body, media_type, digest = await self._manifest(repository, reference)
        if media_type in INDEX_TYPES:
            entries, created = parse_index(body)
            sizes: dict[str, int] = {}
            representative = pick_representative(entries)
            if created is None and representative is not None:
                child, _, _ = await self._manifest(repository, representative.digest)
                manifest = parse_image_manifest(child)
                config = await self._config(repository, manifest)
                created = config.created or manifest.created or config.label_created
                sizes[representative.digest] = manifest.size
            platforms = platforms_from(
                [(e.architecture, e.os, e.variant, e.digest, sizes.get(e.digest)) for e in entries]
            )
            # Sizes only of what was fetched anyway: a full size would cost a GET per platform.
            return RemoteTag(name, digest, created, platforms, resolved=True, media_type=media_type)
        if media_type in IMAGE_MANIFEST_TYPES:
            manifest = parse_image_manifest(body)
            config = await self._config(repository, manifest)
            # One image: its config says the platform, whatever it is (no attestation to drop).
            platform = Platform(
                normalise_architecture(config.architecture, config.variant),
                config.os.lower(),
                digest,
                manifest.size,
            )
            created = config.created or manifest.created or config.label_created
            return RemoteTag(
                name,
                digest,
                created,
                (platform,),
                resolved=True,
                full_size=manifest.size,
                media_type=media_type,
            )
        # The media type is the registry's text: not repeated where people read errors.
        raise MalformedResponse(f"{repository}:{name}: unsupported manifest type")

    async def _manifest(self, repository: str, reference: str) -> tuple[dict[str, Any], str, str]:
        if (cached := self._manifests.get(reference)) is not None:
            return cached[0], cached[1], reference  # by digest: the same bytes, whenever read
        url = f"{self._repo_url(repository)}/manifests/{quote(reference, safe=':')}"
        response = await self._request("GET", url, repository, accept=ACCEPT, is_pull=True)
        if response.status_code != 200:
            raise unexpected(response)
        computed = sha256_digest(response.content)
        if reference.startswith("sha256:") and computed != reference:
            raise MalformedResponse(f"{shown_url(url)}: content does not match its digest", url=url)
        body = json_object(response)
        digest = response.headers.get("docker-content-digest") or computed
        media_type = media_type_of(response.headers.get("content-type"), body)
        # Kept under the digest of the bytes read, never the registry's word for it.
        _keep(self._manifests, computed, (body, media_type))
        return body, media_type, digest

    async def _config(self, repository: str, manifest: ImageManifest) -> ImageConfig:
        if (cached := self._configs.get(manifest.config_digest)) is not None:
            return cached
        url = f"{self._repo_url(repository)}/blobs/{manifest.config_digest}"
        response = await self._request("GET", url, repository)
        if response.status_code != 200:
            raise unexpected(response)
        config = parse_image_config(json_object(response))
        _keep(self._configs, manifest.config_digest, config)
        return config

    # -- sizes -------------------------------------------------------------------------------

    async def image_blobs(self, repository: str, digest: str) -> dict[str, PlatformBlobs]:
        """Architecture → that platform's manifest digest and blobs, for a tag's digest.

        An index costs one GET per image platform (attestations are skipped), a single image
        one GET plus its config blob (only the config names its platform). Everything is read
        by digest, so a re-push while this runs cannot mix two images.
        """
        body, media_type, _ = await self._manifest(repository, digest)
        if media_type in INDEX_TYPES:
            entries, _ = parse_index(body)
            found: dict[str, PlatformBlobs] = {}
            # Devices run Linux: where an architecture has a Windows build too, Linux wins.
            for entry in sorted(entries, key=lambda e: e.os != "linux"):
                arch = normalise_architecture(entry.architecture, entry.variant)
                if arch in found:
                    continue
                child, child_type, _ = await self._manifest(repository, entry.digest)
                if child_type not in IMAGE_MANIFEST_TYPES:
                    raise MalformedResponse(f"{repository}@{entry.digest}: not an image manifest")
                found[arch] = PlatformBlobs(entry.digest, parse_image_blobs(child))
            return found
        if media_type in IMAGE_MANIFEST_TYPES:
            manifest = parse_image_manifest(body)
            config = await self._config(repository, manifest)
            arch = normalise_architecture(config.architecture, config.variant)
            return {arch: PlatformBlobs(digest, parse_image_blobs(body))}
        raise MalformedResponse(f"{repository}@{digest}: unsupported manifest type")

    # -- artifacts (signatures, referrers) ---------------------------------------------------

    async def artifact_manifest(
        self, repository: str, reference: str
    ) -> tuple[dict[str, Any], str, str] | None:
        """(body, media type, digest) of a manifest or index; None when there is none (404)."""
        try:
            return await self._manifest(repository, reference)
        except ImageNotFound:
            return None

    async def referrers(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The OCI 1.1 referrers index of ``digest``; None when the registry has no referrers
        API (a 404), so the caller reads the fallback tag instead."""
        url = f"{self._repo_url(repository)}/referrers/{quote(digest, safe=':')}"
        try:
            response = await self._request("GET", url, repository, accept=OCI_INDEX)
        except ImageNotFound:
            return None
        if response.status_code != 200:
            raise unexpected(response)
        return json_object(response)

    async def blob(self, repository: str, digest: str, *, max_bytes: int) -> bytes:
        """A small blob (a signature payload), checked against its digest and its size cap."""
        url = f"{self._repo_url(repository)}/blobs/{quote(digest, safe=':')}"
        response = await self._request("GET", url, repository)
        if response.status_code != 200:
            raise unexpected(response)
        if len(response.content) > max_bytes:
            raise MalformedResponse(f"{shown_url(url)}: larger than {max_bytes} bytes", url=url)
        if sha256_digest(response.content) != digest:
            raise MalformedResponse(f"{shown_url(url)}: content does not match its digest", url=url)
        return response.content

    # -- authentication ----------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        url: str,
        repository: str,
        *,
        accept: str | None = None,
        is_pull: bool = False,
    ) -> httpx.Response:
        """Send with whatever the registry last asked for; on a 401, answer its challenge once.

        Credentials and tokens go only to the registry itself: a URL on any other
        origin is refused before anything is sent.
        """
        if origin(url) != origin(self.base_url):
            raise MalformedResponse(f"{method}: a URL outside {self.base_url}", url=self.base_url)
        scope = f"repository:{repository}:pull"
        shown = f"{method} {shown_url(url)}"
        for retry in (False, True):
            headers = {"Accept": accept} if accept else {}
            authorization = await tokens.authorization(
                self.transport, self.base_url, scope, self.username, self.password
            )
            if authorization:
                headers["Authorization"] = authorization
            response = await self.transport.send(method, url, headers=headers, is_pull=is_pull)
            if response.status_code == 403:
                raise AuthenticationFailed(
                    f"{shown}: {reason(403)}, access denied", url=url, status=403
                )
            if response.status_code != 401:
                return response
            challenge = tokens.preferred(parse_challenges(response.headers))
            if retry or challenge is None:
                raise AuthenticationFailed(
                    f"{shown}: {reason(401)} (credentials for "
                    f"{host_of(self.base_url)} missing, wrong, or without access)",
                    url=url,
                    status=401,
                )
            state = self.transport.state
            state.tokens.remember_challenge(self.base_url, challenge)
            state.tokens.drop(tokens.key(challenge, scope, self.username))
        raise AssertionError("unreachable")  # pragma: no cover

    def _repo_url(self, repository: str) -> str:
        return f"{self.base_url}/v2/{quote(repository.strip('/'), safe='/')}"


def _settled(tag: RemoteTag) -> asyncio.Future[RemoteTag | None]:
    """A tag not worth a request, queued in listing order beside the HEADs still running."""
    future: asyncio.Future[RemoteTag | None] = asyncio.get_running_loop().create_future()
    future.set_result(tag)
    return future


def _keep(cache: dict[str, T], digest: str, value: T) -> None:
    if len(cache) >= CACHE_ENTRIES:
        del cache[next(iter(cache))]  # the oldest: a scan reads each digest's parts together
    cache[digest] = value
