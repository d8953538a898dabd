"""Benchmark: the image monitor against the fake registry (issue #3's targets).

Prints, for Docker Hub's Hub API:
  * requests per image on the first scan of a 1,000-tag repository (target ≤ 11) and on a rescan
    of the unchanged repository (target = 1);
  * the wall time of a scan of N images at L ms latency with concurrency C, against its lower
    bound (requests * latency / concurrency), as a ratio (target ≤ 1.5).

Runs on a temporary SQLite database (or TAGWARDEN_BENCH_DATABASE_URL). Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from tagwarden.catalogue.models import Image
from tagwarden.config import Settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.migrations import upgrade
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.fake_registry import FakeRegistry

HUB = "http://hub.bench"


async def scenario(
    url: str, images: int, tags: int, latency_ms: int, concurrency: int
) -> tuple[list[int], list[int], float, int]:
    engine = make_engine(url)
    await upgrade(engine)
    sessionmaker = make_sessionmaker(engine)
    fake = FakeRegistry(hub_rate_limit=None)
    for i in range(images):
        fake.add_repository(f"library/img{i}", tags)
    async with sessionmaker() as session, session.begin():
        session.add_all(
            Image(image_name=f"img{i}", approval_status="approved", watch_for_updates=True)
            for i in range(images)
        )
    settings = Settings(
        database_url=url,
        dockerhub_api_url=HUB,
        monitor_concurrency=concurrency,
        monitor_enabled=False,
    )
    async with httpx.AsyncClient(
        transport=fake.transport(), limits=httpx.Limits(max_connections=None)
    ) as http:
        monitor = ImageMonitor(settings, sessionmaker, http, state=RegistryState())
        fake.faults.latency_ms = latency_ms
        started = time.perf_counter()
        await monitor.run_once(force=True)
        elapsed = time.perf_counter() - started
        first = [fake.stats.count("hub", repository=f"library/img{i}") for i in range(images)]
        fake.stats.reset()
        fake.faults.latency_ms = 0
        await monitor.run_once(force=True)
        rescan = [fake.stats.count("hub", repository=f"library/img{i}") for i in range(images)]
        total_first = sum(first)
    await engine.dispose()
    return first, rescan, elapsed, total_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20, help="tags per image in the latency run")
    parser.add_argument("--big-repo-tags", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = os.environ.get("TAGWARDEN_BENCH_DATABASE_URL")

        def fresh(name: str) -> str:
            return base or f"sqlite+aiosqlite:///{Path(tmp) / name}.db"

        first, rescan, _, _ = asyncio.run(scenario(fresh("big"), 1, args.big_repo_tags, 0, 1))
        print(
            f"first scan of a {args.big_repo_tags}-tag repository: {first[0]} requests "
            "(target ≤ 11)"
        )
        print(f"rescan of the unchanged repository:      {rescan[0]} request(s) (target = 1)")

        if base:
            print("note: the latency run needs an empty database; skipped on a shared URL")
            return
        _, _, elapsed, total = asyncio.run(
            scenario(fresh("many"), args.images, args.tags, args.latency_ms, args.concurrency)
        )
        bound = total * args.latency_ms / 1000 / args.concurrency
        print(
            f"{args.images} images, {args.latency_ms} ms latency, concurrency "
            f"{args.concurrency}: {total} requests in {elapsed:.2f} s; lower bound "
            f"{bound:.2f} s; ratio {elapsed / bound if bound else float('inf'):.2f} "
            "(target ≤ 1.5)"
        )


if __name__ == "__main__":
    main()
