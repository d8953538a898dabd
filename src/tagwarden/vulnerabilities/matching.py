"""Whether an installed package version falls in an OSV record's affected ranges (pure).

Versions compare by each ecosystem's own rules through ``univers`` (apk for Alpine, dpkg for
Debian and Ubuntu, PEP 440 for PyPI, semver for npm, Go's), never as strings: ``1.2-r10`` is
newer than ``1.2-r2``, ``1:1.0`` newer than ``2.0``, ``1.0~rc1`` older than ``1.0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key, lru_cache
from typing import Any
from urllib.parse import parse_qs

from univers.versions import (
    AlpineLinuxVersion,
    DebianVersion,
    GolangVersion,
    InvalidVersion,
    PypiVersion,
    SemverVersion,
    Version,
)

from tagwarden.vulnerabilities.policy import Found

# OSV's ecosystem names (before any ":release" suffix) and the version rules they use.
_VERSION_TYPES: dict[str, type[Version]] = {
    "Alpine": AlpineLinuxVersion,
    "Debian": DebianVersion,
    "Ubuntu": DebianVersion,
    "PyPI": PypiVersion,
    "npm": SemverVersion,
    "Go": GolangVersion,
}


def base_ecosystem(ecosystem: str) -> str:
    """``Alpine:v3.20`` → ``Alpine``; ``Ubuntu:22.04:LTS`` → ``Ubuntu``; ``PyPI`` as it is."""
    return ecosystem.split(":", 1)[0]


def ecosystem_keys(ecosystem: str) -> tuple[str, ...]:
    """The record ecosystems that apply to a package of ``ecosystem``: the same release
    (OSV names distribution records per release: ``Alpine:v3.20``, ``Debian:12``) and the
    release-less name some databases use."""
    base = base_ecosystem(ecosystem)
    return (ecosystem,) if base == ecosystem else (ecosystem, base)


@lru_cache(maxsize=1 << 18)
def parse(ecosystem: str, version: str) -> Version | None:
    """The version under its ecosystem's rules; None where it has none or does not parse."""
    kind = _VERSION_TYPES.get(base_ecosystem(ecosystem))
    if kind is None:
        return None
    try:
        return kind(version)
    except (InvalidVersion, ValueError, TypeError):
        return None


def _at_least(a: Version, b: Version) -> bool:
    # Only ``<`` is each ecosystem's own comparison in univers: its ``>=`` and ``>`` come from
    # attrs and compare the version strings (so ``1.2-r2 >= 1.2-r10`` would hold).
    return not a < b


def _above(a: Version, b: Version) -> bool:
    return b < a


@dataclass(frozen=True, slots=True)
class Hit:
    """The package is affected; ``fixed_in`` the first fixed version above it, if any."""

    fixed_in: str | None


Bound = tuple[str, "Version | None", str]  # (kind, parsed version or None for "0", as written)


def compile_range(ecosystem: str, events: Sequence[Mapping[str, Any]]) -> tuple[Bound, ...]:
    """One range's events in the order OSV evaluates them: ``introduced: "0"`` first, then by
    version (an event whose version does not parse is left out)."""
    zero: list[Bound] = []
    rest: list[tuple[Version, str, str]] = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            value = event.get(kind)
            if not isinstance(value, str):
                continue
            if value == "0":
                zero.append((kind, None, value))
                continue
            parsed = parse(ecosystem, value)
            if parsed is not None:
                rest.append((parsed, kind, value))
    rest.sort(key=cmp_to_key(_compare))
    return tuple(zero) + tuple((k, v, raw) for v, k, raw in rest)


def _compare(a: tuple[Version, str, str], b: tuple[Version, str, str]) -> int:
    return -1 if a[0] < b[0] else (1 if b[0] < a[0] else 0)


def compile_ranges(
    ecosystem: str, ranges: Sequence[Mapping[str, Any]]
) -> tuple[tuple[Bound, ...], ...]:
    return tuple(
        compile_range(ecosystem, r.get("events") or [])
        for r in ranges
        if r.get("type") in ("ECOSYSTEM", "SEMVER")
    )


def in_range(installed: Version, bounds: Sequence[Bound]) -> Hit | None:
    """OSV's evaluation of one range: affected from an ``introduced`` up to (not including)
    the next ``fixed``, or up to and including a ``last_affected``."""
    affected = False
    fixed_in: str | None = None
    for kind, bound, value in bounds:
        if kind == "introduced":
            if bound is None or _at_least(installed, bound):
                affected = True
                fixed_in = None
        elif kind == "fixed" and bound is not None:
            if _at_least(installed, bound):
                affected = False
            elif affected and fixed_in is None:
                fixed_in = value
        elif kind == "last_affected" and bound is not None and _above(installed, bound):
            affected = False
    return Hit(fixed_in) if affected else None


def affects_compiled(
    ecosystem: str,
    version: str,
    compiled: Sequence[Sequence[Bound]],
    versions: Sequence[str],
) -> Hit | None:
    installed = parse(ecosystem, version)
    best: Hit | None = None
    if installed is not None:
        for bounds in compiled:
            hit = in_range(installed, bounds)
            if hit is not None and (best is None or best.fixed_in is None):
                best = hit
    if best is None and version in versions:
        return Hit(None)
    return best


def affects(
    ecosystem: str,
    version: str,
    ranges: Sequence[Mapping[str, Any]],
    versions: Sequence[str],
) -> Hit | None:
    """Whether ``version`` of a package is affected by one ``affected[]`` entry: listed in
    its ``versions``, or inside one of its ECOSYSTEM (or SEMVER) ranges."""
    return affects_compiled(ecosystem, version, compile_ranges(ecosystem, ranges), versions)


@dataclass(frozen=True, slots=True)
class Entry:
    """One indexed ``affected[]`` entry and what a finding takes from its record."""

    osv_id: str
    # The ranges compiled once under the ecosystem the entry is indexed by (compile_ranges).
    ranges: tuple[tuple[Bound, ...], ...]
    versions: Sequence[str]
    severity: str
    aliases: tuple[str, ...]


Index = Mapping[tuple[str, str], Sequence[Entry]]


def package_names(package: Mapping[str, Any]) -> tuple[str, ...]:
    """The package's name, and its source package where the purl names one (``upstream=``):
    Debian's records are filed under source packages (``openssl``, not ``libssl3``)."""
    return _names(str(package.get("name") or ""), str(package.get("purl") or ""))


@lru_cache(maxsize=1 << 16)
def _names(name: str, purl: str) -> tuple[str, ...]:
    _, _, query = purl.partition("?")
    if "upstream=" not in query:
        return (name,)
    upstream = parse_qs(query.split("#", 1)[0]).get("upstream", [""])[0].split("@", 1)[0]
    return (name, upstream) if upstream and upstream != name else (name,)


def index_keys(package: Mapping[str, Any]) -> list[tuple[str, str]]:
    ecosystem = str(package.get("ecosystem") or "")
    if not ecosystem:
        return []
    return [(e, n) for e in ecosystem_keys(ecosystem) for n in package_names(package) if n]


def match_packages(
    packages: Sequence[Mapping[str, Any]],
    index: Index,
    memo: dict[tuple[str, str, str, str], list[tuple[Entry, Hit]]] | None = None,
) -> list[Found]:
    """Every (record, package) hit of one SBOM: each package looks up only the entries
    indexed under its own ecosystem and name. ``memo``, shared across the SBOMs of one
    re-match, keeps each (ecosystem, name, version)'s hits: tags of one image share most
    of their packages, and each is evaluated once."""
    memo = {} if memo is None else memo
    found: dict[tuple[str, str, str], Found] = {}
    for package in packages:
        version = package.get("version")
        ecosystem = package.get("ecosystem")
        if not isinstance(version, str) or not isinstance(ecosystem, str):
            continue
        name = str(package.get("name"))
        for key in index_keys(package):
            entries = index.get(key)
            if not entries:
                continue
            memo_key = (ecosystem, key[0], key[1], version)
            hits = memo.get(memo_key)
            if hits is None:
                hits = [
                    (entry, hit)
                    for entry in entries
                    if (hit := affects_compiled(ecosystem, version, entry.ranges, entry.versions))
                ]
                memo[memo_key] = hits
            for entry, hit in hits:
                if (entry.osv_id, name, version) not in found:
                    found[(entry.osv_id, name, version)] = Found(
                        entry.osv_id, name, version, hit.fixed_in, entry.severity, entry.aliases
                    )
    return list(found.values())
