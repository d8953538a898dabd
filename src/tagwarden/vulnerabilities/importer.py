"""Loading OSV records into the database: a record whose stored ``modified`` is as new is left
alone, so importing the same archive twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.db import utcnow
from tagwarden.vulnerabilities.models import OsvAffected, OsvRecord
from tagwarden.vulnerabilities.osv import Record

# Rows per executemany: large enough to amortise round trips, small enough for SQLite's
# and asyncpg's parameter limits with the IN lists of the deletes.
BATCH = 2000


@dataclass
class ImportResult:
    read: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    data_date: datetime | None = None
    errors: list[str] = field(default_factory=list)


async def data_date(session: AsyncSession) -> datetime | None:
    """The date of the OSV data in the database: its newest record's ``modified``."""
    found: datetime | None = await session.scalar(select(func.max(OsvRecord.modified)))
    return found


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk


async def import_records(
    session: AsyncSession,
    records: Iterable[Record],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Store ``records`` (added, or replacing an older ``modified``), in the caller's
    transaction. ``progress`` is told how many records each batch read."""
    stored = dict((await session.execute(select(OsvRecord.id, OsvRecord.modified))).all())
    result = ImportResult()
    for chunk in _chunks(records, BATCH):
        newest: dict[str, Record] = {}
        for record in chunk:
            seen = newest.get(record.id)
            if seen is None or record.modified > seen.modified:
                newest[record.id] = record
        fresh = [r for r in newest.values() if r.id not in stored or r.modified > stored[r.id]]
        result.read += len(chunk)
        result.unchanged += len(chunk) - len(fresh)
        replaced = [r.id for r in fresh if r.id in stored]
        result.replaced += len(replaced)
        result.added += len(fresh) - len(replaced)
        await _write(session, fresh, replaced)
        stored.update({r.id: r.modified for r in fresh})
        if progress is not None:
            progress(len(chunk))
    result.data_date = await data_date(session)
    return result


async def _write(session: AsyncSession, fresh: list[Record], replaced: list[str]) -> None:
    if replaced:
        await session.execute(delete(OsvAffected).where(OsvAffected.record_id.in_(replaced)))
        await session.execute(delete(OsvRecord).where(OsvRecord.id.in_(replaced)))
    if not fresh:
        return
    now = utcnow()
    # Core inserts (the tables, not the mapped classes): executemany without the ORM's bulk
    # bookkeeping, which costs more than the INSERT itself at 200,000 records.
    await session.execute(
        insert(cast(Table, OsvRecord.__table__)),
        [
            {
                "id": r.id,
                "modified": r.modified,
                "published": r.published,
                "aliases": r.aliases,
                "summary": r.summary,
                "severity": r.severity,
                "imported_at": now,
            }
            for r in fresh
        ],
    )
    rows: list[dict[str, Any]] = [
        {
            "record_id": r.id,
            "ecosystem": a.ecosystem,
            "name": a.name,
            "ranges": a.ranges,
            "versions": a.versions,
            "severity": a.severity,
        }
        for r in fresh
        for a in r.affected
    ]
    if rows:
        await session.execute(insert(cast(Table, OsvAffected.__table__)), rows)
