"""Docker-tag versions: parse `7.2`, `7.2.5-alpine`, `1.25.3-bookworm`, `v2.0.0-rc1`; order them.

Tags are not semver. What real repositories publish decides the rules:

- a ``v``/``V`` prefix is decoration: ``v2.0.0`` and ``2.0.0`` are the same version;
- a pre-release is ``rc``/``beta``/``alpha``/``pre``/``preview``/``dev`` with an optional
  number (``-rc1``, ``-rc.1``, ``rc1``); ``rc10`` sorts after ``rc9``, and every pre-release
  sorts before its final release;
- anything else after a ``-`` is a *variant* (``alpine``, ``bookworm``, ``slim-bookworm``,
  ``alpine3.19``): a different build of the same version, never a pre-release. Versions are
  ordered only against versions of the same variant, because ``7.2.6`` is no upgrade for
  a device running ``7.2.5-alpine``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, cast

# Lower rank, earlier release. ``a``/``b`` are PEP 440 spellings (``3.13.0a1``) and only count
# when glued to the number, so a variant such as ``-b`` is never mistaken for a beta.
PRE_RANK = {"dev": 0, "alpha": 1, "a": 1, "beta": 2, "b": 2, "pre": 3, "preview": 3, "rc": 4}
_LABEL = {"a": "alpha", "b": "beta", "preview": "pre"}

_TAG = re.compile(
    r"""
    ^(?P<v>[vV])?
    (?P<release>\d+(?:\.\d+)*)
    (?:
        (?P<glued>a|b|rc|alpha|beta|dev)(?P<glued_num>\d+)         # 3.13.0a1, 2.0.0rc1
      | [-.](?P<label>rc|alpha|beta|pre|preview|dev)\.?(?P<num>\d+)?  # -rc1, -rc.1, -beta
        (?=$|-)
    )?
    (?:-(?P<variant>[A-Za-z0-9][A-Za-z0-9_.-]*))?$
    """,
    re.VERBOSE | re.IGNORECASE,
)
MAX_COMPONENT = 10**12  # dates as tags (20251017) fit; absurd digit strings do not


@dataclass(frozen=True, slots=True)
class PreRelease:
    label: str  # normalised: dev, alpha, beta, pre, rc
    number: int

    @property
    def key(self) -> tuple[int, int]:
        return (PRE_RANK[self.label], self.number)

    def __str__(self) -> str:
        return f"{self.label}{self.number}"


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed tag. Equality ignores how it was spelled (``v`` prefix, ``rc.1`` vs ``rc1``)."""

    release: tuple[int, ...]
    pre: PreRelease | None = None
    variant: str = ""
    tag: str = field(default="", compare=False)

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None

    @property
    def key(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Sort key within one variant: release, then pre-releases before the final release.

        Releases compare as tuples, so ``7.2`` < ``7.2.0`` < ``7.2.1`` < ``7.10``.
        """
        return (self.release, (0, *self.pre.key) if self.pre else (1,))

    def comparable(self, other: Version) -> bool:
        return self.variant == other.variant

    def _check(self, other: object) -> Version:
        if not isinstance(other, Version):
            raise TypeError(f"cannot compare a version with {type(other).__name__}")
        if not self.comparable(other):
            raise TypeError(
                f"{self.tag or self} and {other.tag or other} are different variants "
                f"({self.variant or 'none'} vs {other.variant or 'none'}); they have no order"
            )
        return other

    def __lt__(self, other: object) -> bool:
        return self.key < self._check(other).key

    def __le__(self, other: object) -> bool:
        return self.key <= self._check(other).key

    def __gt__(self, other: object) -> bool:
        return self.key > self._check(other).key

    def __ge__(self, other: object) -> bool:
        return self.key >= self._check(other).key

    def part(self, index: int) -> int:
        """Component ``index`` of the release (0 = major), 0 where the tag omits it."""
        return self.release[index] if index < len(self.release) else 0

    def __str__(self) -> str:
        text = ".".join(map(str, self.release))
        if self.pre:
            text += f"-{self.pre}"
        if self.variant:
            text += f"-{self.variant}"
        return text


def parse(tag: str) -> Version | None:
    """The version a tag names, or ``None`` for tags that name none (``latest``, ``alpine``)."""
    match = _TAG.match(tag)
    if match is None:
        return None
    release = tuple(int(p) for p in match["release"].split("."))
    if any(p >= MAX_COMPONENT for p in release):
        return None
    pre = None
    label = match["glued"] or match["label"]
    if label:
        label = label.lower()
        number = match["glued_num"] or match["num"]
        pre = PreRelease(_LABEL.get(label, label), int(number) if number else 0)
    return Version(release, pre, match["variant"] or "", tag)


def newest(versions: Iterable[Version], *, variant: str | None = None) -> Version | None:
    """The highest version (of ``variant`` only, when given; else all must share one)."""
    pool = [v for v in versions if variant is None or v.variant == variant]
    return max(pool, key=lambda v: v.key) if pool else None


# -- ranges ------------------------------------------------------------------------------------

Operator = Literal[">=", ">", "<=", "<", "==", "!="]
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)?\s*(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class Clause:
    operator: Operator
    bound: Version

    def holds(self, version: Version) -> bool:
        left, right = version.key, self.bound.key
        return {
            ">=": left >= right,
            ">": left > right,
            "<=": left <= right,
            "<": left < right,
            "==": left == right,
            "!=": left != right,
        }[self.operator]


@dataclass(frozen=True, slots=True)
class VersionRange:
    """``>=7.2, <8``: every clause must hold. Bounds compare release and pre-release only, so
    one range serves every variant of an image. Pre-releases are outside a range unless one of
    its bounds is itself a pre-release (as in semver): ``<8`` should not let ``8.0-rc1`` in."""

    clauses: tuple[Clause, ...]

    @classmethod
    def parse(cls, spec: str) -> VersionRange:
        clauses = []
        for part in spec.split(","):
            match = _CLAUSE.match(part)
            if not part.strip() or match is None:
                raise ValueError(f"bad range clause {part.strip()!r} in {spec!r}")
            bound = parse(match[2])
            if bound is None or bound.variant:
                raise ValueError(f"{match[2]!r} in {spec!r} is not a plain version")
            operator = match[1] or "=="
            clauses.append(Clause(cast(Operator, "==" if operator == "=" else operator), bound))
        return cls(tuple(clauses))

    def contains(self, version: Version) -> bool:
        if version.is_prerelease and not any(c.bound.is_prerelease for c in self.clauses):
            return False
        return all(c.holds(version) for c in self.clauses)

    def __str__(self) -> str:
        return ", ".join(f"{c.operator}{c.bound}" for c in self.clauses)


def is_patch_bump(candidate: Version, base: Version) -> bool:
    """Same major.minor as ``base``, higher patch, same variant, and a final release."""
    return (
        candidate.comparable(base)
        and not candidate.is_prerelease
        and len(candidate.release) >= 3
        and candidate.release[:2] == (base.part(0), base.part(1))
        and candidate.key > base.key
    )


def is_minor_bump(candidate: Version, base: Version) -> bool:
    """Same major as ``base``, higher version, same variant, and a final release."""
    return (
        candidate.comparable(base)
        and not candidate.is_prerelease
        and candidate.part(0) == base.part(0)
        and candidate.key > base.key
    )
