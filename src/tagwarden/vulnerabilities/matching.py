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


def _events(ecosystem: str, events: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(kind, version) in the order OSV evaluates them: by version, ``introduced: 0`` first."""
    keyed: list[tuple[int, Version | None, str, str]] = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            value = event.get(kind)
            if not isinstance(value, str):
                continue
            if value == "0":
                keyed.append((0, None, kind, value))
                continue
            parsed = parse(ecosystem, value)
            if parsed is not None:
                keyed.append((1, parsed, kind, value))
    zero = [(k, v) for order, _, k, v in keyed if order == 0]
    rest = sorted(
        ((parsed, k, v) for _, parsed, k, v in keyed if parsed is not None),
        key=cmp_to_key(_compare),
    )
    return zero + [(k, v) for _, k, v in rest]


def _compare(a: tuple[Version, str, str], b: tuple[Version, str, str]) -> int:
    return -1 if a[0] < b[0] else (1 if b[0] < a[0] else 0)


def in_range(ecosystem: str, installed: Version, events: Sequence[Mapping[str, Any]]) -> Hit | None:
    """OSV's evaluation of one ECOSYSTEM range: affected from an ``introduced`` up to (not
    including) the next ``fixed``, or up to and including a ``last_affected``."""
    affected = False
    fixed_in: str | None = None
    for kind, value in _events(ecosystem, events):
        bound = None if value == "0" else parse(ecosystem, value)
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


def affects(
    ecosystem: str,
    version: str,
    ranges: Sequence[Mapping[str, Any]],
    versions: Sequence[str],
) -> Hit | None:
    """Whether ``version`` of a package is affected by one ``affected[]`` entry: listed in
    its ``versions``, or inside one of its ECOSYSTEM (or SEMVER) ranges."""
    listed = version in versions
    installed = parse(ecosystem, version)
    best: Hit | None = None
    if installed is not None:
        for entry in ranges:
            if entry.get("type") not in ("ECOSYSTEM", "SEMVER"):
                continue
            hit = in_range(ecosystem, installed, entry.get("events") or [])
            if hit is not None and (best is None or best.fixed_in is None):
                best = hit
    if best is None and listed:
        return Hit(None)
    return best


@dataclass(frozen=True, slots=True)
class Entry:
    """One indexed ``affected[]`` entry and what a finding takes from its record."""

    osv_id: str
    ranges: Sequence[Mapping[str, Any]]
    versions: Sequence[str]
    severity: str
    aliases: tuple[str, ...]


Index = Mapping[tuple[str, str], Sequence[Entry]]


def package_names(package: Mapping[str, Any]) -> tuple[str, ...]:
    """The package's name, and its source package where the purl names one (``upstream=``):
    Debian's records are filed under source packages (``openssl``, not ``libssl3``)."""
    name = str(package.get("name") or "")
    purl = str(package.get("purl") or "")
    _, _, query = purl.partition("?")
    upstream = parse_qs(query.split("#", 1)[0]).get("upstream", [""])[0].split("@", 1)[0]
    return (name, upstream) if upstream and upstream != name else (name,)


def index_keys(package: Mapping[str, Any]) -> list[tuple[str, str]]:
    ecosystem = str(package.get("ecosystem") or "")
    if not ecosystem:
        return []
    return [(e, n) for e in ecosystem_keys(ecosystem) for n in package_names(package) if n]


def match_packages(packages: Sequence[Mapping[str, Any]], index: Index) -> list[Found]:
    """Every (record, package) hit of one SBOM: each package looks up only the entries
    indexed under its own ecosystem and name."""
    found: dict[tuple[str, str, str], Found] = {}
    for package in packages:
        version = package.get("version")
        ecosystem = package.get("ecosystem")
        if not isinstance(version, str) or not isinstance(ecosystem, str):
            continue
        name = str(package.get("name"))
        for key in index_keys(package):
            for entry in index.get(key, ()):
                hit = affects(ecosystem, version, entry.ranges, entry.versions)
                if hit is None or (entry.osv_id, name, version) in found:
                    continue
                found[(entry.osv_id, name, version)] = Found(
                    entry.osv_id, name, version, hit.fixed_in, entry.severity, entry.aliases
                )
    return list(found.values())
