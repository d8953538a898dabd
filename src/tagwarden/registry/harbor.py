"""Harbor through its v2.0 API: ``/api/v2.0/projects/{p}/repositories/{r}/artifacts``.

One artifact (an index or an image) per entry, with every tag naming it, its ``push_time``,
``size``, the platforms of an index's children (``references[].platform``) or of an image
(``extra_attrs``), and the vulnerability scan's overview, which is kept as evidence. Paging
follows the relative ``Link``. Harbor takes HTTP Basic, robot accounts (``robot$…``) included;
public projects answer anonymously.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote

from tagwarden.registry.auth import basic_header
from tagwarden.registry.base import MalformedResponse, RemoteTag, parse_timestamp, platforms_from
from tagwarden.registry.native import PAGE_SIZE, NativeClient, body_of, size, text
from tagwarden.registry.transport import shown_url

MAX_PAGES = 1000
# Build attributes worth a reviewer's look; ``config`` (env, labels, entrypoint) is not kept.
_EXTRA_KEPT = ("architecture", "os", "created", "author")
_NEVER = "0001-01-01"  # Harbor's zero time: never pulled, never pushed


def artifacts_path(repository: str) -> str:
    """``project/a/b`` → ``projects/project/repositories/a%252Fb``: the repository name is
    encoded twice, as Harbor's router decodes it once before matching."""
    project, _, name = repository.strip("/").partition("/")
    if not name:
        raise MalformedResponse(f"{repository}: a Harbor repository is project/name")
    twice = quote(quote(name, safe=""), safe="")
    return f"projects/{quote(project, safe='')}/repositories/{twice}"


def _when(value: object) -> Any:
    if isinstance(value, str) and value.startswith(_NEVER):
        return None
    return parse_timestamp(value)


def _platforms(artifact: dict[str, Any]) -> tuple[Any, ...]:
    references = artifact.get("references") or []
    rows: list[tuple[str, str, str | None, str | None, int | None]] = []
    if isinstance(references, list) and references:
        for ref in references:
            platform = ref.get("platform") if isinstance(ref, dict) else None
            if not isinstance(platform, dict) or not isinstance(platform.get("architecture"), str):
                continue  # a child without a platform (a signature, an SBOM): not an image
            rows.append(
                (
                    platform["architecture"],
                    str(platform.get("os") or "linux"),
                    text(platform.get("variant")),
                    text(ref.get("child_digest")),
                    None,  # Harbor sizes the whole index, not each child
                )
            )
        return platforms_from(rows)
    extra = artifact.get("extra_attrs")
    if isinstance(extra, dict) and isinstance(extra.get("architecture"), str):
        rows.append(
            (
                extra["architecture"],
                str(extra.get("os") or "linux"),
                text(extra.get("variant")),
                text(artifact.get("digest")),
                size(artifact.get("size")),
            )
        )
    return platforms_from(rows)


def _evidence(artifact: dict[str, Any]) -> dict[str, Any] | None:
    evidence: dict[str, Any] = {"registry": "harbor"}
    scan = artifact.get("scan_overview")
    if isinstance(scan, dict) and scan:
        evidence["scan_overview"] = scan
    extra = artifact.get("extra_attrs")
    if isinstance(extra, dict):
        kept = {k: extra[k] for k in _EXTRA_KEPT if isinstance(extra.get(k), str)}
        if kept:
            evidence["extra_attrs"] = kept
    return evidence if len(evidence) > 1 else None


def parse_artifact(artifact: Any) -> list[RemoteTag]:
    """One artifact → a RemoteTag per tag naming it (none when it is untagged)."""
    if not isinstance(artifact, dict) or not isinstance(artifact.get("digest"), str):
        raise MalformedResponse("a Harbor artifact without a digest")
    platforms = _platforms(artifact)
    evidence = _evidence(artifact)
    pushed = _when(artifact.get("push_time"))
    found = []
    for tag in artifact.get("tags") or []:
        if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
            raise MalformedResponse("a Harbor tag without a name")
        found.append(
            RemoteTag(
                name=tag["name"],
                digest=artifact["digest"],
                # The tag's own push (a retag of an old artifact is new), else the artifact's.
                last_updated=_when(tag.get("push_time")) or pushed,
                platforms=platforms,
                resolved=bool(platforms),
                full_size=size(artifact.get("size")),
                media_type=text(artifact.get("manifest_media_type")),
                evidence=evidence,
            )
        )
    return found


class HarborClient(NativeClient):
    api_name = "Harbor"

    async def api_headers(self) -> dict[str, str]:
        await self.load_credentials()
        if self.username and self.password:
            return {"Authorization": basic_header(self.username, self.password)}
        return {}

    def api_refused(self, response: Any) -> None:
        if self.source is not None:
            self.source.forget()

    def artifacts_url(self, repository: str) -> str:
        return f"{self.api_url}/api/v2.0/{artifacts_path(repository)}/artifacts"

    async def api_pages(self, repository: str) -> AsyncGenerator[list[RemoteTag], None]:
        url: str | None = self.artifacts_url(repository)
        params: dict[str, str] | None = {
            "page": "1",
            "page_size": str(PAGE_SIZE),
            "with_tag": "true",
            "with_scan_overview": "true",
            "q": "tags=*",  # tagged artifacts only: an untagged one is nothing to approve
        }
        for page in range(1, MAX_PAGES + 1):
            if url is None:
                return
            response = await self.api_get(url, first=page == 1, params=params)
            body = body_of(response)
            if not isinstance(body, list):
                raise MalformedResponse(f"{shown_url(url)}: not a list of artifacts", url=url)
            yield [tag for artifact in body for tag in parse_artifact(artifact)]
            # The Link carries the query (page, page_size, q) from here on.
            url, params = self.next_link(response), None
        raise MalformedResponse(f"{shown_url(self.api_url)}: more than {MAX_PAGES} pages")
