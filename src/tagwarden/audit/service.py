"""Writing and reading the audit log. Entries join the caller's transaction, never their own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit.models import AuditEntry
from tagwarden.db import utcnow


def snapshot(obj: object, fields: Iterable[str]) -> dict[str, Any]:
    """A JSON-safe picture of ``obj``'s fields, for an entry's before/after."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        out[name.rstrip("_")] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=before,
        after=after,
    )
    session.add(entry)
    return entry


async def record_many(session: AsyncSession, entries: Sequence[Mapping[str, Any]]) -> None:
    """Several entries (``record``'s keyword arguments each) in one executemany INSERT.

    For a batch of changes (a monitor scan's requests): the ORM's flush would insert them one
    row at a time on SQLite, to learn ids nobody needs.
    """
    if not entries:
        return
    await session.flush()  # entries added before these keep their place in the log
    occurred_at = utcnow()
    await session.execute(
        insert(AuditEntry),
        [
            {
                "occurred_at": occurred_at,
                "actor": e["actor"],
                "action": e["action"],
                "entity_type": e["entity_type"],
                "entity_id": str(e["entity_id"]),
                "before": e.get("before"),
                "after": e.get("after"),
            }
            for e in entries
        ],
    )


async def list_entries(
    session: AsyncSession,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[AuditEntry], int]:
    query = select(AuditEntry)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return rows.all(), int(total or 0)
