"""CycloneDX JSON documents (an SBOM referrer, Syft's ``cyclonedx-json``) → packages (pure)."""

from __future__ import annotations

from typing import Any, Final

from tagwarden.vulnerabilities.packages import Package, package, unique

FORMAT: Final = "cyclonedx-json"
PREDICATE_TYPE: Final = "https://cyclonedx.org/bom"
ARTIFACT_TYPES: Final = frozenset({"application/vnd.cyclonedx+json"})
# Components nest (a jar inside a jar); a hostile document must not recurse without end.
MAX_DEPTH = 16


class NotCycloneDx(ValueError):
    """The document is not a CycloneDX JSON BOM."""


def _components(items: object, depth: int) -> list[dict[str, Any]]:
    if not isinstance(items, list) or depth > MAX_DEPTH:
        return []
    found = []
    for item in items:
        if isinstance(item, dict):
            found.append(item)
            found += _components(item.get("components"), depth + 1)
    return found


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def packages(document: dict[str, Any]) -> list[Package]:
    """The packages of a CycloneDX BOM; an in-toto Statement is unwrapped to its predicate."""
    if document.get("predicateType") == PREDICATE_TYPE and isinstance(
        document.get("predicate"), dict
    ):
        document = document["predicate"]
    if document.get("bomFormat") != "CycloneDX":
        raise NotCycloneDx("not a CycloneDX JSON document")
    found = []
    for entry in _components(document.get("components"), 0):
        if entry.get("type") in ("container", "operating-system"):
            continue
        item = package(
            _text(entry.get("name")), _text(entry.get("version")), _text(entry.get("purl"))
        )
        if item is not None:
            found.append(item)
    return unique(found)
