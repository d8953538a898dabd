"""What changed between two SBOMs' package lists (pure): the evidence's ``packages`` diff."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict


class Upgrade(TypedDict):
    name: str
    ecosystem: str | None
    previous: str
    current: str


class PackagesDiff(TypedDict):
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    upgraded: list[Upgrade]


def _versions(packages: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for item in packages:
        key = (str(item.get("ecosystem") or ""), str(item["name"]))
        found.setdefault(key, set()).add(str(item["version"]))
    return found


def _entry(key: tuple[str, str], version: str) -> dict[str, Any]:
    return {"name": key[1], "ecosystem": key[0] or None, "version": version}


def packages_diff(
    previous: Iterable[Mapping[str, Any]], current: Iterable[Mapping[str, Any]]
) -> PackagesDiff:
    """``added``/``removed``: a (name, ecosystem) only in one list; ``upgraded``: in both, with
    another version (``previous`` → ``current``; the word covers downgrades too). A package
    installed at several versions is upgraded when its version sets differ, from the lowest
    version that went to the highest that came (sorted as text: no ecosystem rules here)."""
    before, after = _versions(previous), _versions(current)
    added = [_entry(k, v) for k in sorted(after.keys() - before.keys()) for v in sorted(after[k])]
    removed = [
        _entry(k, v) for k in sorted(before.keys() - after.keys()) for v in sorted(before[k])
    ]
    upgraded = [
        Upgrade(
            name=k[1],
            ecosystem=k[0] or None,
            previous=min(before[k] - after[k]) if before[k] - after[k] else min(before[k]),
            current=max(after[k] - before[k]) if after[k] - before[k] else max(after[k]),
        )
        for k in sorted(before.keys() & after.keys())
        if before[k] != after[k]
    ]
    return PackagesDiff(added=added, removed=removed, upgraded=upgraded)
