"""OSV records as an operator put them on disk: JSON files, or the ecosystems' ``all.zip``
archives, in a directory (read here; nothing is ever fetched), and their normal form."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tagwarden.vulnerabilities.severity import Severity, affected_severity, record_severity

# A record is a few kilobytes; a file far past this is not one (and must not fill memory).
MAX_RECORD_BYTES = 8 * 1024 * 1024
_FRACTION = re.compile(r"(\.\d{6})\d+")


class OsvFormatError(ValueError):
    """A file that is not an OSV record (or archive of them); the import names it."""


@dataclass(frozen=True, slots=True)
class Affected:
    ecosystem: str
    name: str
    ranges: list[dict[str, Any]]
    versions: list[str]
    severity: str


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    modified: datetime
    published: datetime | None
    aliases: list[str]
    summary: str | None
    severity: str
    affected: list[Affected]


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 as OSV writes it (``Z``, up to nanoseconds), as an aware UTC time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _affected(entry: Mapping[str, Any], record_level: str) -> Affected | None:
    package = entry.get("package")
    if not isinstance(package, Mapping):
        return None
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not isinstance(name, str) or not ecosystem or not name:
        return None
    ranges = [
        {"type": r.get("type"), "events": [e for e in r.get("events") or [] if isinstance(e, dict)]}
        for r in entry.get("ranges") or []
        if isinstance(r, Mapping) and r.get("type") in ("ECOSYSTEM", "SEMVER")
    ]
    versions = [v for v in entry.get("versions") or [] if isinstance(v, str)]
    if not ranges and not versions:
        return None

    severity = affected_severity(Severity(record_level), entry)
    return Affected(ecosystem[:100], name[:300], ranges, versions[:5000], severity.value)


def normalise(data: Any) -> Record:
    """A record's fields matching and findings use; OsvFormatError for anything else."""
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
        raise OsvFormatError("not an OSV record: no id")
    modified = parse_time(data.get("modified"))
    if modified is None:
        raise OsvFormatError(f"{data['id']}: no RFC 3339 `modified`")
    level = record_severity(data).value
    affected = [
        a
        for a in (_affected(e, level) for e in data.get("affected") or [] if isinstance(e, Mapping))
        if a is not None
    ]
    summary = data.get("summary")
    return Record(
        id=str(data["id"])[:200],
        modified=modified,
        published=parse_time(data.get("published")),
        aliases=[a for a in data.get("aliases") or [] if isinstance(a, str)][:100],
        summary=summary[:2000] if isinstance(summary, str) else None,
        severity=level,
        affected=affected,
    )


def _load(raw: bytes, where: str) -> Record:
    if len(raw) > MAX_RECORD_BYTES:
        raise OsvFormatError(f"{where}: larger than {MAX_RECORD_BYTES} bytes")
    try:
        return normalise(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise OsvFormatError(f"{where}: not JSON ({exc})") from exc
    except OsvFormatError as exc:
        raise OsvFormatError(f"{where}: {exc}") from exc


def files_in(path: Path) -> list[Path]:
    """The JSON files and zip archives at ``path`` (a file, or a directory searched through)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise OsvFormatError(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".zip"))


def read_file(path: Path) -> Iterator[Record]:
    """The records of one file: a record, or every ``.json`` member of an archive."""
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    if member.is_dir() or not member.filename.endswith(".json"):
                        continue
                    if member.file_size > MAX_RECORD_BYTES:
                        raise OsvFormatError(f"{path}:{member.filename}: too large")
                    yield _load(archive.read(member), f"{path}:{member.filename}")
        except zipfile.BadZipFile as exc:
            raise OsvFormatError(f"{path}: not a zip archive") from exc
        return
    yield _load(path.read_bytes(), str(path))


def count_records(files: list[Path]) -> int:
    """How many records the files hold (for a progress bar), without reading them."""
    total = 0
    for path in files:
        if path.suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as archive:
                    total += sum(1 for m in archive.infolist() if m.filename.endswith(".json"))
            except zipfile.BadZipFile:
                total += 1
        else:
            total += 1
    return total
