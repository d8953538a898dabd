"""Fetching an image's tags: one tag that will not resolve does not hide the others."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime

from tagwarden.monitor.discovery import TagFilter, plan
from tagwarden.monitor.service import fetch
from tagwarden.registry.base import MalformedResponse, Platform, RemoteTag

DIGEST = {name: "sha256:" + c * 64 for name, c in (("1.0", "a"), ("chart-1.0.0", "b"))}


class OciLike:
    """Lists names and digests cheaply; resolving a Helm chart fails as a real registry's would."""

    async def iter_tags(
        self,
        repository: str,
        known: Mapping[str, str | None],
        *,
        worth: Callable[[str], bool] | None = None,
    ) -> AsyncIterator[RemoteTag]:
        for name, digest in DIGEST.items():
            yield RemoteTag(name, digest, None, (), resolved=False)

    async def resolve_tag(self, repository: str, tag: str) -> RemoteTag:
        if tag.startswith("chart"):
            raise MalformedResponse("image config without architecture/os")
        return RemoteTag(
            tag,
            DIGEST[tag],
            datetime(2025, 10, 17, tzinfo=UTC),
            (Platform("amd64", "linux", "sha256:" + "c" * 64, None),),
            resolved=True,
        )

    async def tag_digest(self, repository: str, tag: str) -> str:
        return DIGEST[tag]

    def budget(self) -> int | None:
        return None


async def test_a_tag_that_is_not_an_image_is_kept_as_seen_and_never_asked_about() -> None:
    remote = await fetch(OciLike(), "acme/app", {}, TagFilter(None, None))

    by_name = {t.name: t for t in remote}
    assert by_name["1.0"].architectures == ["amd64"]
    assert by_name["chart-1.0.0"].architectures == []
    the_plan = plan(remote, {}, policy="all", wanted=TagFilter(None, None))
    assert [c.tag.name for c in the_plan.candidates] == ["1.0"]
    assert {t.name for t in the_plan.new} == {"1.0", "chart-1.0.0"}  # both recorded as seen
