"""An in-process index of every device's poll-relevant state, so an unchanged poll needs no
database round trip.

A conditional poll only needs (key hash, state version, poll speed) to answer 304; at a million
devices polling every few minutes those reads would be most of the database's work. Each replica
keeps them in memory and re-reads, every ``refresh_seconds``, only the rows whose
``state_changed_at`` moved (plus tombstones of deleted devices). Writes made from this process
also invalidate their devices at once, after commit.

Why a stale entry is harmless: the index only ever answers "unchanged" (304). A 200 body, an
unknown device, a key that does not match, or an ETag that does not match all fall through to
the database. So the worst a stale entry can do is tell a device "unchanged" for about one
refresh interval after its state changed on another replica, or accept a deleted device's key
for as long. The index stops answering altogether when its last refresh is older than two
intervals (a database it cannot reach, a stalled loop), so that bound holds when refreshes fail.

Refresh windows overlap by ``OVERLAP``: a row is stamped with its writer's clock at write time,
and commits (or a replica's clock) may lag that stamp; rows re-read twice cost nothing. A full
reload every ``FULL_RELOAD_SECONDS`` is the backstop for a transaction longer than the overlap.

Storage is one ``uuid → packed bytes`` dict (device id, key digest, version, poll speed in 49
bytes): neither holds a container, so the garbage collector never tracks the index. A million
``Entry`` tuples were a million tracked objects that every full collection walked, and a poll
allocates enough to trigger one about every second: that walk, ~90 ms at 100,000 devices, was
the poll's p99. Packed, an entry costs about 200 bytes (dict slot, uuid string, value).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import sys
import time
import weakref
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from tagwarden.db import utcnow
from tagwarden.devices.models import Device, DeviceDeletion
from tagwarden.workers import Ticker

log = logging.getLogger("tagwarden.devices")

OVERLAP = timedelta(seconds=5)
FULL_RELOAD_SECONDS = 600.0
_CHUNK = 5_000  # rows handled between yields to the event loop during a load
_CHANGED = "tagwarden.devices.changed"


class Entry(NamedTuple):
    device_id: int
    key_digest: bytes  # SHA-256 of the device key, raw (half the memory of the hex form)
    version: int
    fast_poll: bool


# How an Entry is stored: bytes hold no references, so the index is invisible to the collector.
_PACKED = struct.Struct("<q32sq?")


def key_digest(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


_ROWS = select(Device.id, Device.uuid, Device.key_hash, Device.state_version, Device.fast_poll)
_TOMBSTONES = select(DeviceDeletion.device_id, DeviceDeletion.uuid)


class DeviceIndex:
    def __init__(self, engine: AsyncEngine, *, refresh_seconds: float = 1.0) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._entries: dict[str, bytes] = {}  # uuid → _PACKED Entry
        # Device id → when this process changed it (monotonic). Such an entry is not trusted
        # until a refresh that started after the change has re-read it.
        self._invalidated: dict[int, float] = {}
        self._trusted_until = 0.0  # monotonic; nothing is trusted before the first load
        self._cursor: datetime | None = None  # wall clock at the start of the last refresh
        self._last_full = 0.0
        self.loaded = asyncio.Event()  # set after the first full load
        _register(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, uuid: str) -> Entry | None:
        """The device's entry, or None when only the database can answer."""
        if time.monotonic() > self._trusted_until:
            return None
        packed = self._entries.get(uuid)
        if packed is None:
            return None
        entry = Entry._make(_PACKED.unpack(packed))
        if entry.device_id in self._invalidated:
            return None
        return entry

    def footprint(self) -> int:
        """Bytes held by the entries: the dict, its uuid keys and packed values."""
        return sys.getsizeof(self._entries) + sum(
            sys.getsizeof(k) + sys.getsizeof(v) for k, v in self._entries.items()
        )

    def invalidate(self, device_ids: Iterable[int]) -> None:
        now = time.monotonic()
        for device_id in device_ids:
            self._invalidated[device_id] = now

    async def load(self) -> None:
        """Read every device (start-up, and the periodic backstop), streamed in chunks so that
        neither a million rows at once nor their processing stalls the polls being served."""
        started, cursor = time.monotonic(), utcnow()
        entries: dict[str, bytes] = {}
        async with self.engine.connect() as conn:
            result = await conn.stream(_ROWS.execution_options(yield_per=_CHUNK))
            async for rows in result.partitions():
                for row in rows:
                    if self._invalidated.get(row.id, -1.0) < started:
                        entries[row.uuid] = _pack(row)
                await asyncio.sleep(0)
        self._entries = entries
        self._forget_invalidations_before(started)
        self._finish(started, cursor)
        self._last_full = started
        self.loaded.set()

    async def refresh(self) -> int:
        """Apply rows changed (and devices deleted) since the last refresh, less OVERLAP."""
        if self._cursor is None or time.monotonic() - self._last_full > FULL_RELOAD_SECONDS:
            await self.load()
            return len(self._entries)
        started, cursor = time.monotonic(), utcnow()
        since = self._cursor - OVERLAP
        async with self.engine.connect() as conn:
            # Tombstones before rows: a device deleted and registered again in between is
            # then seen as its new row, never dropped after it.
            gone = (await conn.execute(_TOMBSTONES.where(DeviceDeletion.deleted_at >= since))).all()
            changed = (await conn.execute(_ROWS.where(Device.state_changed_at >= since))).all()
        for tombstone in gone:
            packed = self._entries.get(tombstone.uuid)
            if packed is not None and _PACKED.unpack(packed)[0] == tombstone.device_id:
                del self._entries[tombstone.uuid]
            if self._invalidated.get(tombstone.device_id, started) < started:
                del self._invalidated[tombstone.device_id]
        for start in range(0, len(changed), _CHUNK):
            for row in changed[start : start + _CHUNK]:
                if self._invalidated.get(row.id, -1.0) < started:
                    self._entries[row.uuid] = _pack(row)
                    self._invalidated.pop(row.id, None)
            if len(changed) > _CHUNK:
                await asyncio.sleep(0)  # a rollout's whole batch, re-read during the overlap
        self._finish(started, cursor)
        return len(changed) + len(gone)

    def _finish(self, started: float, cursor: datetime) -> None:
        self._cursor = cursor
        self._trusted_until = started + 2 * self.refresh_seconds

    def _forget_invalidations_before(self, started: float) -> None:
        self._invalidated = {k: v for k, v in self._invalidated.items() if v >= started}

    async def run_forever(self) -> None:
        # Fixed rate: the index promises to be at most two intervals old. A failed refresh is
        # logged by the ticker; polls fall back to the database once the index is that old.
        await Ticker("device index", self.refresh_seconds, fixed_rate=True).run(self.refresh)


def _pack(row: Any) -> bytes:
    return _PACKED.pack(row.id, bytes.fromhex(row.key_hash), row.state_version, bool(row.fast_poll))


# -- invalidation on this process's own writes --------------------------------------------------
# Services call note_changed(session, ids); once that session commits, every index in this
# process over the same database forgets those devices (tests and the CLI open engines of their
# own, so the key is the database URL, not the engine).

_indexes: dict[str, weakref.WeakSet[DeviceIndex]] = {}


def _register(index: DeviceIndex) -> None:
    _indexes.setdefault(str(index.engine.url), weakref.WeakSet()).add(index)


def note_changed(session: AsyncSession, device_ids: Iterable[int]) -> None:
    session.info.setdefault(_CHANGED, set()).update(device_ids)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    changed: set[int] | None = session.info.pop(_CHANGED, None)
    if not changed or session.bind is None:
        return
    for index in list(_indexes.get(str(session.bind.engine.url), ())):
        index.invalidate(changed)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
