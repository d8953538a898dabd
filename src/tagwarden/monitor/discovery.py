"""Which upstream tags become approval requests (pure: no I/O, no clock).

A tag is *new* when tagwarden has never seen it for that image; a known tag whose digest changed
is a *re-push*. The first scan of an image asks only for its most recent tag and records the rest
as seen, so adding an image with a thousand tags does not bury reviewers in a thousand requests
(seed 001's "hundreds of pending requests after first run", removed by design).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from tagwarden import patterns
from tagwarden.registry.base import RemoteTag

_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class KnownTag:
    """A row of ``discovered_tags``: what tagwarden saw of a tag the last time."""

    tag: str
    digest: str | None
    platforms: Mapping[str, str]
    first_seen_at: datetime
    last_updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A tag that should get an approval request, and why."""

    tag: RemoteTag
    reason: Literal["new", "digest_changed"]
    old_digest: str | None = None
    changed_platforms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    new: list[RemoteTag] = field(default_factory=list)
    changed: list[RemoteTag] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    # Tags seen before by name only (the filters refused them) that a HEAD named now, because
    # they became tracked: their digest is recorded, so their next re-push is one.
    first_looked: list[RemoteTag] = field(default_factory=list)


class TagFilter:
    """``tag_include`` / ``tag_exclude`` regular expressions (searched, not anchored), run by
    RE2 (see tagwarden.patterns). A pattern RE2 refuses (one stored before patterns were
    checked) raises :class:`~tagwarden.patterns.PatternError` here, when the filter is made:
    the check of that image fails with that reason, and no other image's does."""

    def __init__(
        self, include: str | None, exclude: str | None, watched: Collection[str] = ()
    ) -> None:
        self.include = patterns.check(include) if include else None
        self.exclude = patterns.check(exclude) if exclude else None
        # An image's watch_tags pass whatever the patterns say: naming a tag is asking for it.
        self.watched = frozenset(watched)

    def __call__(self, tag: str) -> bool:
        if tag in self.watched:
            return True
        if self.include and not patterns.search(self.include, tag):
            return False
        return not (self.exclude and patterns.search(self.exclude, tag))


def newest_first(tags: Sequence[RemoteTag]) -> list[RemoteTag]:
    """By the registry's date, newest first; undated tags keep their order, after dated ones."""
    return sorted(tags, key=lambda t: t.last_updated or _OLDEST, reverse=True)


def needs_resolving(
    tags: Sequence[RemoteTag], known: Mapping[str, KnownTag], wanted: TagFilter
) -> list[RemoteTag]:
    """Cheaply listed tags (OCI: name and digest only) whose details the plan needs."""
    return [
        t
        for t in tags
        if not t.resolved and wanted(t.name) and _is_new_or_changed(t, known.get(t.name))
    ]


def _is_new_or_changed(tag: RemoteTag, known: KnownTag | None) -> bool:
    if known is None:
        return True
    if tag.digest and known.digest:
        return tag.digest != known.digest
    # A Hub API entry without a digest, or a tag first seen as one: its platforms' own digests
    # tell whether it changed, with no request.
    return bool(tag.platform_digests) and tag.platform_digests != dict(known.platforms)


def changed_platforms(tag: RemoteTag, known: KnownTag) -> tuple[str, ...]:
    """Architectures whose own manifest differs (or appeared, or went) between two digests."""
    now = tag.platform_digests
    before = dict(known.platforms)
    archs = sorted(set(now) | set(before))
    return tuple(a for a in archs if now.get(a) != before.get(a))


def plan(
    remote: Sequence[RemoteTag],
    known: Mapping[str, KnownTag],
    *,
    policy: str,
    wanted: TagFilter,
    tracked: Collection[str] = (),
) -> Plan:
    """``tracked``: tags that have an approval request or an image_tags row. A re-push asks
    again only for those: official images rebuild every tag upstream, and a re-push of a tag
    nobody ever asked about is no news (it was recorded as seen, and stays so)."""
    ordered = newest_first(remote)
    first_scan = not known
    # A tag without a digest but with platforms is a Hub API entry that left its index
    # unnamed: a candidate like any other, named by one registry HEAD if it is chosen.
    new = [
        t for t in ordered if t.name not in known and wanted(t.name) and (t.digest or t.platforms)
    ]
    changed = [
        t
        for t in ordered
        if t.name in known and wanted(t.name) and _is_new_or_changed(t, known[t.name])
    ]
    # A tag with no architecture (attestations only, a Helm chart, a tag the registry would not
    # resolve) is recorded as seen but never asked about: activation would have nothing to add.
    deployable = [t for t in new if t.architectures]
    chosen = deployable[:1] if first_scan or policy != "all" else deployable
    candidates = [Candidate(t, "new") for t in chosen]
    candidates += [
        Candidate(
            t,
            "digest_changed",
            old_digest=known[t.name].digest,
            changed_platforms=changed_platforms(t, known[t.name]),
        )
        for t in changed
        if t.name in tracked and t.architectures
    ]
    first_looked = [
        t
        for t in ordered
        if t.digest
        and (seen := known.get(t.name)) is not None
        and seen.digest is None
        and not seen.platforms
    ]
    return Plan(new=new, changed=changed, candidates=candidates, first_looked=first_looked)


def also_tagged(
    tag: RemoteTag, remote: Sequence[RemoteTag], known: Mapping[str, KnownTag]
) -> list[str]:
    """Other tags that point at the same digest now (``latest``, ``7``, ``7.2`` …)."""
    if not tag.digest:
        return []
    listed = {t.name for t in remote}
    names = {t.name for t in remote if t.digest == tag.digest}
    # Tags not listed this scan (Docker Hub stops paging early) are judged by what was seen.
    names |= {k.tag for k in known.values() if k.digest == tag.digest and k.tag not in listed}
    names.discard(tag.name)
    return sorted(names)
