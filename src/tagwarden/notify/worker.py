"""The outbox worker: claims due deliveries, sends them, records the outcome.

Safe on many replicas and across restarts. A delivery is claimed by pushing its
``next_attempt_at`` one lease ahead with a conditional UPDATE (after ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so replicas do not even contend); no transaction is open while a receiver is
slow. A worker that dies mid-delivery records nothing, the lease runs out, and the delivery is
due again: delivery is at least once, and the idempotency key lets a receiver drop a repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.clock import SYSTEM_CLOCK, Clock, utc
from tagwarden.config import Settings
from tagwarden.notify.models import NotificationChannel, NotificationDelivery, NotificationEvent
from tagwarden.notify.senders import DeliveryFailed, Message, send
from tagwarden.notify.states import SENDABLE, TRANSITIONS, DeliveryOutcome
from tagwarden.workers import Ticker

log = logging.getLogger("tagwarden.notify")
BATCH = 50
CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    attempt: int
    kind: str
    config: dict[str, object]
    message: Message


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    attempt: int
    error: str | None


class OutboxWorker:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        self.clock = clock
        # eager: a tick that sent something is followed at once, more may be due.
        self._ticker = Ticker("notification outbox", settings.outbox_poll_seconds, eager=True)

    def backoff(self, attempt: int) -> timedelta:
        """Exponential with jitter: retries of many events to one dead receiver spread out."""
        base = self.settings.outbox_backoff_seconds * 2 ** max(0, attempt - 1)
        delay = min(self.settings.outbox_backoff_max_seconds, base)
        return timedelta(seconds=delay * random.uniform(0.8, 1.0))  # noqa: S311 - not crypto

    async def claim(self, limit: int = BATCH) -> list[Claimed]:
        now = utc(self.clock)
        lease = now + timedelta(seconds=self.settings.outbox_lease_seconds)
        D = NotificationDelivery  # noqa: N806 - a table alias keeps the queries readable
        claimed: list[tuple[int, int]] = []
        async with self.sessionmaker() as session, session.begin():
            due = (
                await session.execute(
                    select(D.id, D.next_attempt_at, D.attempts)
                    .where(D.status == SENDABLE, D.next_attempt_at <= now)
                    .order_by(D.next_attempt_at, D.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for delivery_id, seen, attempts in due:
                # Conditional on what was read: on SQLite (no row locks) a second worker that
                # read the same row changes nothing and moves on.
                done = await session.execute(
                    update(D)
                    .where(D.id == delivery_id, D.status == SENDABLE, D.next_attempt_at == seen)
                    .values(next_attempt_at=lease, attempts=D.attempts + 1)
                )
                if getattr(done, "rowcount", 0) == 1:
                    claimed.append((delivery_id, attempts + 1))
            if not claimed:
                return []
            rows = (
                await session.execute(
                    select(D.id, NotificationChannel, NotificationEvent)
                    .join(NotificationChannel, NotificationChannel.id == D.channel_id)
                    .join(NotificationEvent, NotificationEvent.id == D.event_id)
                    .where(D.id.in_([c for c, _ in claimed]))
                )
            ).all()
        by_id = {delivery_id: (channel, event) for delivery_id, channel, event in rows}
        return [
            Claimed(
                delivery_id,
                attempt,
                by_id[delivery_id][0].kind,
                dict(by_id[delivery_id][0].config),
                Message(
                    by_id[delivery_id][1].key,
                    by_id[delivery_id][1].event,
                    dict(by_id[delivery_id][1].payload),
                    by_id[delivery_id][1].created_at,
                ),
            )
            for delivery_id, attempt in claimed
            if delivery_id in by_id
        ]

    async def deliver(self, item: Claimed) -> Outcome:
        try:
            await send(item.kind, item.config, item.message, http=self.http, settings=self.settings)
        except Exception as exc:
            # A bad channel (an unparsable URL, a header an SMTP library refuses) must count as a
            # failed attempt like any other: escaping here would skip recording the whole batch
            # and resend every event in it on every tick.
            expected = isinstance(exc, DeliveryFailed)
            if not expected:
                # The type only in last_error, which people read: the text of an unexpected
                # error may quote what a receiver sent, or a URL's password. The log has it.
                exc = DeliveryFailed(f"unexpected error ({type(exc).__name__})")
            log.warning(
                "notification %s (%s) delivery %d attempt %d failed: %s",
                item.message.event,
                item.message.key,
                item.delivery_id,
                item.attempt,
                exc,
                exc_info=not expected,
            )
            return Outcome(item.delivery_id, item.attempt, str(exc)[:2000])
        return Outcome(item.delivery_id, item.attempt, None)

    def _step(self, outcome: Outcome) -> DeliveryOutcome:
        if outcome.error is None:
            return DeliveryOutcome.SENT
        if outcome.attempt >= self.settings.outbox_max_attempts:
            return DeliveryOutcome.GIVE_UP
        return DeliveryOutcome.RETRY

    async def record(self, outcomes: list[Outcome]) -> None:
        now = utc(self.clock)
        D = NotificationDelivery  # noqa: N806
        async with self.sessionmaker() as session, session.begin():
            for outcome in outcomes:
                step = self._step(outcome)
                after = TRANSITIONS[(SENDABLE, step)]
                if step is DeliveryOutcome.SENT:
                    values: dict[str, object] = {
                        "status": after,
                        "delivered_at": now,
                        "last_error": None,
                    }
                elif step is DeliveryOutcome.GIVE_UP:
                    values = {"status": after, "last_error": outcome.error}
                else:
                    values = {
                        "next_attempt_at": now + self.backoff(outcome.attempt),
                        "last_error": outcome.error,
                    }
                await session.execute(
                    update(D)
                    .where(D.id == outcome.delivery_id, D.status == SENDABLE)
                    .values(values)
                )

    async def run_once(self) -> int:
        """One tick: claim, send concurrently, record. Returns how many were attempted."""
        claimed = await self.claim()
        if not claimed:
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(item: Claimed) -> Outcome:
            async with gate:
                return await self.deliver(item)

        outcomes = list(await asyncio.gather(*(one(c) for c in claimed)))
        await self.record(outcomes)
        return len(outcomes)

    async def run_forever(self) -> None:
        log.info("notification outbox worker started")
        await self._ticker.run(self.run_once)

    def wake(self) -> None:
        self._ticker.wake()

    async def aclose(self) -> None:
        await self.http.aclose()
