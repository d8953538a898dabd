"""A crash mid-scan loses no interval: a real ``kill -9``, on both databases.

``tests/integration/test_monitor_lease.py`` covers the lease in-process; here a real
``tagwarden serve`` is killed with SIGKILL while its scan waits on a slow registry, and a second
one, started once the lease has run out, checks every image the dead one had claimed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image
from tagwarden.db import make_engine, make_sessionmaker, utcnow
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.testing.fake_server import running

T = TypeVar("T")
IMAGES = 12
LEASE_SECONDS = 4  # short, so the test waits little; a scan renews it every third of it
SLOW_MS = 5000  # per registry request: the first scan is still waiting when it is killed
WAIT_SECONDS = 60  # generous bound on anything the servers are waited for
# `python -c` rather than the console script: it imports tagwarden from PYTHONPATH when that is
# set, so the same test can be run against another checkout's code.
TAGWARDEN = [sys.executable, "-c", "from tagwarden.cli.main import app; app()"]


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make())


def _add_images(url: str) -> list[int]:
    async def go() -> list[int]:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                images = [
                    Image(image_name=f"app{i}", approval_status="approved", watch_for_updates=True)
                    for i in range(IMAGES)
                ]
                session.add_all(images)
                await session.flush()
                return [image.id for image in images]
        finally:
            await engine.dispose()

    return _run(go)


def _state(url: str) -> list[tuple[datetime | None, datetime | None, int]]:
    """(next_check_at, last_checked_at, approval requests) of each image, by id."""

    async def go() -> list[tuple[datetime | None, datetime | None, int]]:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                requests = (
                    select(func.count(ApprovalRequest.id))
                    .where(ApprovalRequest.image_id == Image.id)
                    .scalar_subquery()
                )
                rows = await session.execute(
                    select(Image.next_check_at, Image.last_checked_at, requests).order_by(Image.id)
                )
                return [(n, c, int(r)) for n, c, r in rows.all()]
        finally:
            await engine.dispose()

    return _run(go)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(database_url: str, registry_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        TAGWARDEN_DATABASE_URL=database_url,
        TAGWARDEN_DOCKERHUB_API_URL=registry_url,
        TAGWARDEN_SECRET_KEY="test-secret-key-0123456789",
        TAGWARDEN_MONITOR_LEASE_SECONDS=str(LEASE_SECONDS),
        TAGWARDEN_CHECK_INTERVAL_MINUTES="600",
        TAGWARDEN_ROLLOUT_WORKER_ENABLED="false",
        TAGWARDEN_OUTBOX_WORKER_ENABLED="false",
        TAGWARDEN_RULES_WORKER_ENABLED="false",
        TAGWARDEN_LOG_LEVEL="INFO",
    )
    port = str(_free_port())
    with log.open("wb") as out:  # the child keeps its own descriptor
        # --no-migrate: the fixture migrated the database already, on both databases.
        return subprocess.Popen(
            [*TAGWARDEN, "serve", "--host", "127.0.0.1", "--port", port, "--no-migrate"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(log: Path, text: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"tagwarden serve exited ({process.returncode}):\n{content}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {WAIT_SECONDS} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=WAIT_SECONDS)


def test_images_of_a_scan_killed_with_sigkill_are_checked_by_the_next_start(
    database_url: str, tmp_path: Path
) -> None:
    fake = FakeRegistry()
    for i in range(IMAGES):
        fake.add_repository(f"library/app{i}", 3)
    ids = _add_images(database_url)
    with running(fake) as registry_url:
        fake.faults.latency_ms = SLOW_MS
        first_log = tmp_path / "first.log"
        first = _serve(database_url, registry_url, first_log)
        try:
            _wait_for(first_log, f"[ImageMonitor] Monitoring {IMAGES} images", first)
            killed_at = utcnow()
            first.send_signal(signal.SIGKILL)  # mid-scan: every check waits on the registry
            first.wait(timeout=WAIT_SECONDS)
        finally:
            _stop(first, signal.SIGKILL)
        fake.faults.latency_ms = 0

        # (a) Right after the crash the claimed images are leased, not due, and unchecked…
        after_kill = _state(database_url)
        assert len(after_kill) == len(ids)
        for next_check, last_checked, requests in after_kill:
            assert next_check is not None
            assert next_check > killed_at
            assert last_checked is None
            assert requests == 0
        # A lease, not a whole check interval: it ends soon after the kill.
        lease_ends = max(n for n, _, _ in after_kill if n is not None)
        latest_end = killed_at + timedelta(seconds=LEASE_SECONDS + 5)

        # (b) Once it has run out, the next start checks every one of them.
        time.sleep(max(0.0, (min(lease_ends, latest_end) - utcnow()).total_seconds()) + 0.5)
        second_log = tmp_path / "second.log"
        second = _serve(database_url, registry_url, second_log)
        try:
            log = _wait_for(second_log, "[ImageMonitor] Check complete", second)
        finally:
            _stop(second)
    assert f"[ImageMonitor] Monitoring {IMAGES} images" in log, log
    assert lease_ends <= latest_end, (lease_ends, killed_at)
    checked = _state(database_url)
    assert all(last_checked is not None for _, last_checked, _ in checked), checked
    assert [requests for _, _, requests in checked] == [1] * IMAGES  # tag_policy latest
    # Written, each check sets the real next time: an interval ahead, not another lease.
    later = utcnow() + timedelta(hours=9)
    assert all(n is not None and n > later for n, _, _ in checked), checked
