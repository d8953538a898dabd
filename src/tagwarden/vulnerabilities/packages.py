"""One SBOM package as tagwarden stores it, and the OSV ecosystem a purl names (pure).

A package is ``{"name", "version", "purl", "ecosystem", "source"}``: ``ecosystem`` in OSV's
spelling (``"Alpine:v3.20"``, ``"Debian:12"``, ``"PyPI"``) or None when the purl names no
ecosystem OSV knows; ``source`` is the distribution's source package (the purl's ``upstream``
qualifier, e.g. ``openssl`` for ``libssl3``), which is what distributions' OSV records name.
"""

from __future__ import annotations

import re
from typing import Any, Final, TypedDict

from packageurl import PackageURL


class Package(TypedDict):
    name: str
    version: str
    purl: str | None
    ecosystem: str | None
    source: str | None


# purl types whose OSV ecosystem needs no distribution release.
LANGUAGE_ECOSYSTEMS: Final = {
    "pypi": "PyPI",
    "npm": "npm",
    "golang": "Go",
    "cargo": "crates.io",
    "maven": "Maven",
    "gem": "RubyGems",
    "nuget": "NuGet",
    "composer": "Packagist",
    "hex": "Hex",
    "pub": "Pub",
}
# The image itself, as Syft lists it beside what it found inside: not a package.
IMAGE_TYPES: Final = frozenset({"oci", "docker"})
_RELEASE = re.compile(r"^[a-z]+-(?P<version>[0-9][0-9A-Za-z.]*)$")
MAX_FIELD = 512


def parse_purl(purl: str | None) -> PackageURL | None:
    if not purl:
        return None
    try:
        return PackageURL.from_string(purl)
    except ValueError:
        return None


def _release(qualifiers: dict[str, str], distro: str | None) -> str | None:
    """The distribution release a purl names: ``distro=alpine-3.20.3`` → ``3.20.3``
    (``distro`` of the document when the purl has none)."""
    named = qualifiers.get("distro") or distro
    if not named:
        return None
    found = _RELEASE.match(named.strip().lower())
    return found.group("version") if found else None


def _distribution(kind: str, namespace: str | None, release: str | None) -> str | None:
    if release is None:
        return None
    parts = release.split(".")
    if kind == "apk" and namespace == "alpine" and len(parts) >= 2:
        return f"Alpine:v{parts[0]}.{parts[1]}"
    if kind == "deb" and namespace == "debian":
        return f"Debian:{parts[0]}"
    if kind == "deb" and namespace == "ubuntu" and len(parts) >= 2:
        name = f"Ubuntu:{parts[0]}.{parts[1]}"
        # Ubuntu's long-term releases are the .04 of even years; OSV names them ":LTS".
        lts = parts[1] == "04" and parts[0].isdigit() and int(parts[0]) % 2 == 0
        return f"{name}:LTS" if lts else name
    return None


def ecosystem_of(purl: PackageURL, distro: str | None = None) -> str | None:
    """OSV's ecosystem for ``purl``: ``pkg:apk/alpine/musl@1.2.4-r2?distro=alpine-3.20`` →
    ``Alpine:v3.20``, ``pkg:deb/debian/…?distro=debian-12`` → ``Debian:12``; None when it
    names none (an unknown type, a distribution package without a release)."""
    kind = purl.type.lower()
    if kind in LANGUAGE_ECOSYSTEMS:
        return LANGUAGE_ECOSYSTEMS[kind]
    namespace = (purl.namespace or "").lower() or None
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    return _distribution(kind, namespace, _release(qualifiers, distro))


def _source(purl: PackageURL) -> str | None:
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    upstream = qualifiers.get("upstream")
    if not upstream:
        return None
    # dpkg writes "openssl@3.0.11-1" when the source version differs from the binary's.
    return upstream.split("@", 1)[0].strip() or None


def package(
    name: str | None, version: str | None, purl: str | None, *, distro: str | None = None
) -> Package | None:
    """A stored package from a document's entry; None for what is not one (no name or
    version, the image itself)."""
    parsed = parse_purl(purl)
    if parsed is not None and parsed.type.lower() in IMAGE_TYPES:
        return None
    name = name or (parsed.name if parsed else None)
    version = version or (parsed.version if parsed else None)
    if not name or not version or version.upper() in ("NOASSERTION", "NONE"):
        return None
    return Package(
        name=name[:MAX_FIELD],
        version=version[:MAX_FIELD],
        purl=purl[: MAX_FIELD * 2] if purl and parsed else None,
        ecosystem=ecosystem_of(parsed, distro) if parsed else None,
        source=_source(parsed) if parsed else None,
    )


def unique(packages: list[Package]) -> list[Package]:
    """One entry per (ecosystem, name, version, purl), in a stable order (documents list a
    package once per location it was found at)."""
    seen: dict[tuple[Any, ...], Package] = {}
    for item in packages:
        seen.setdefault(
            (item["ecosystem"] or "", item["name"], item["version"], item["purl"]), item
        )
    return sorted(seen.values(), key=lambda p: (p["ecosystem"] or "", p["name"], p["version"]))
