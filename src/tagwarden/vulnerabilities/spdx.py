"""SPDX 2.3 JSON documents (BuildKit's attestations, Syft's ``spdx-json``) → packages (pure)."""

from __future__ import annotations

from typing import Any, Final

from tagwarden.vulnerabilities.packages import Package, package, unique

FORMAT: Final = "spdx-json"
PREDICATE_TYPE: Final = "https://spdx.dev/Document"
# What a referrer of an SPDX document says it is.
ARTIFACT_TYPES: Final = frozenset({"application/spdx+json", "text/spdx+json"})


class NotSpdx(ValueError):
    """The document is not SPDX JSON with a packages list."""


def _purl(entry: dict[str, Any]) -> str | None:
    refs = entry.get("externalRefs")
    for ref in refs if isinstance(refs, list) else []:
        if (
            isinstance(ref, dict)
            and ref.get("referenceType") == "purl"
            and isinstance(ref.get("referenceLocator"), str)
        ):
            return str(ref["referenceLocator"])
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def packages(document: dict[str, Any]) -> list[Package]:
    """The packages of an SPDX document; an in-toto Statement is unwrapped to its predicate."""
    if document.get("predicateType") == PREDICATE_TYPE and isinstance(
        document.get("predicate"), dict
    ):
        document = document["predicate"]
    if not str(document.get("spdxVersion", "")).startswith("SPDX-") or not isinstance(
        document.get("packages", []), list
    ):
        raise NotSpdx("not an SPDX JSON document")
    found = []
    for entry in document.get("packages", []):
        if not isinstance(entry, dict):
            continue
        item = package(_text(entry.get("name")), _text(entry.get("versionInfo")), _purl(entry))
        if item is not None:
            found.append(item)
    return unique(found)
