"""Benchmark: the image monitor against the fake registry (issue #3's and #15's targets).

Prints, for Docker Hub's Hub API:
  * requests per image on the first scan of a 1,000-tag repository (target ≤ 11) and on a rescan
    of the unchanged repository (target = 1);
  * the wall time of a scan of N images at L ms latency with concurrency C, against its lower
    bound (requests * latency / concurrency), as a ratio (target ≤ 1.5).

And for an OCI registry (tags/list, manifests, blobs):
  * requests for a rescan of an unchanged 1,000-tag repository with 5 tracked tags (target: its
    tags/list pages + 5);
  * manifest and config GETs of the first scan of 106 tags on 2 digests (target ≤ 2 x (index +
    platform manifests + config));
  * the same scan-time ratio as Docker Hub's, for N images on the OCI API.

The registry of the latency run is the fake served by uvicorn in a separate process on loopback,
as a real registry is remote: its CPU is not the monitor's. Runs on a temporary SQLite database,
and on a fresh PostgreSQL database too when TAGWARDEN_BENCH_POSTGRES_URL names a server (e.g.
postgresql://postgres@127.0.0.1:5432/test). Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from tagwarden.catalogue.models import Image
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.migrations import upgrade
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.fake_records import version_tag
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.testing.fake_server import serve

HUB = "http://hub.bench"
# The OCI registry's name in the in-process runs: a loopback address, served by the fake's
# transport and never dialled.
OCI = "127.0.0.1:5999"
PLATFORMS = 3  # the fake's default platforms per tag


def seeded_fake(images: int, tags: int, public_url: str | None = None) -> FakeRegistry:
    # No pull limit: the OCI runs GET manifests, and the bench measures cost, not a budget.
    fake = FakeRegistry(hub_rate_limit=None, public_url=public_url, pull_limit=None)
    for i in range(images):
        fake.add_repository(f"library/img{i}", tags)
    return fake


@asynccontextmanager
async def monitor_for(
    url: str,
    images: int,
    registry_url: str,
    concurrency: int,
    transport: Any = None,
    sent: list[httpx.Request] | None = None,
    *,
    oci_host: str | None = None,
    watch_tags: list[str] | None = None,
) -> AsyncIterator[ImageMonitor]:
    """A migrated database holding ``images`` watched images, and a monitor over it; every
    request it sends is appended to ``sent``. With ``oci_host`` the images are on that OCI
    registry (answering at ``registry_url``), else on Docker Hub (its API at ``registry_url``).
    """
    engine = make_engine(url)
    await upgrade(engine)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        session.add_all(
            Image(image_name=f"img{i}", approval_status="approved", watch_for_updates=True,
                  registry_host=oci_host or "docker.io", watch_tags=watch_tags or [])
            for i in range(images)
        )  # fmt: skip
    registries = {oci_host: RegistryCredentials(url=registry_url)} if oci_host else {}
    settings = Settings(
        database_url=url,
        dockerhub_api_url=HUB if oci_host else registry_url,
        registries=registries,
        monitor_concurrency=concurrency,
        monitor_enabled=False,
        # The fake Hub is served in-process; Syft would dial Docker Hub's real registry.
        sbom_syft=False,
    )
    limits = httpx.Limits(max_connections=concurrency * 2)
    try:

        async def count(request: httpx.Request) -> None:
            if sent is not None:
                sent.append(request)

        hooks = {"request": [count]}
        async with httpx.AsyncClient(transport=transport, limits=limits, event_hooks=hooks) as http:
            yield ImageMonitor(settings, sessionmaker, http, state=RegistryState())
    finally:
        await engine.dispose()


async def request_counts(url: str, tags: int) -> tuple[int, int]:
    """In-process fake, so every request is counted: (first scan, rescan) of one repository."""
    fake = seeded_fake(1, tags)
    async with monitor_for(url, 1, HUB, 1, fake.transport()) as monitor:
        await monitor.run_once(force=True)
        first = fake.stats.count("hub", repository="library/img0")
        fake.stats.reset()
        await monitor.run_once(force=True)
        return first, fake.stats.count("hub", repository="library/img0")


async def oci_rescan(url: str, tags: int) -> tuple[int, int]:
    """(requests of a rescan of an unchanged ``tags``-tag OCI repository with 5 tracked tags:
    the first scan's request and 4 watch_tags, its tags/list pages)."""
    fake = seeded_fake(1, tags)
    watched = [version_tag(i) for i in range(0, 40, 10)]
    async with monitor_for(url, 1, f"http://{OCI}", 1, fake.transport(), oci_host=OCI,
                           watch_tags=watched) as monitor:  # fmt: skip
        await monitor.run_once(force=True)
        fake.stats.reset()
        await monitor.run_once(force=True)
    return fake.stats.count(repository="library/img0"), fake.stats.count("oci_tags")


async def oci_shared_digests(url: str) -> tuple[int, int, int]:
    """(manifest HEADs, manifest GETs, blob GETs) of the first scan of 106 tags on 2 digests."""
    fake = seeded_fake(1, 2)
    for i in range(52):
        fake.alias_tag("library/img0", f"old-{i}", version_tag(0))
        fake.alias_tag("library/img0", f"new-{i}", version_tag(1))
    async with monitor_for(url, 1, f"http://{OCI}", 1, fake.transport(), oci_host=OCI) as monitor:
        await monitor.run_once(force=True)
    repo = "library/img0"
    return (
        fake.stats.count("oci_manifest", "HEAD", repository=repo),
        fake.stats.count("oci_manifest", "GET", repository=repo),
        fake.stats.count("oci_blob", repository=repo),
    )


async def scan_times(
    url: str, registry_url: str, images: int, concurrency: int, *, oci: bool = False
) -> list[tuple[str, float, int]]:
    """Wall time and requests sent of the first scan, of a rescan, and of the baseline: the
    same requests sent by the same HTTP client at the same concurrency, their answers read
    and thrown away (what the network and the registry cost, with no monitor at all). ``oci``:
    the images are read through the OCI API (the registry named by its loopback address)."""
    sent: list[httpx.Request] = []
    host = registry_url.split("://", 1)[1] if oci else None
    async with monitor_for(
        url, images, registry_url, concurrency, sent=sent, oci_host=host
    ) as monitor:
        scans = []
        for scan in ("first scan", "rescan"):
            sent.clear()
            started = time.perf_counter()
            summary = await monitor.run_once(force=True)
            scans.append((scan, time.perf_counter() - started, len(sent)))
            if summary.errors:
                raise SystemExit(f"{summary.errors} images failed: {summary.results[0].error}")
        urls = [(r.method, str(r.url), r.headers) for r in sent]
        sent.clear()
        gate = asyncio.Semaphore(concurrency)

        async def replay(method: str, url: str, headers: httpx.Headers) -> None:
            async with gate:
                # The same method and credentials: an OCI scan's HEADs and token-bearing GETs.
                await monitor.http.request(method, url, headers=headers)

        started = time.perf_counter()
        await asyncio.gather(*(replay(*r) for r in urls))
        scans.append(("baseline (bare requests)", time.perf_counter() - started, len(sent)))
    return scans


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_in_subprocess(images: int, tags: int, latency_ms: int) -> Iterator[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", str(port), "--images", str(images),
         "--tags", str(tags), "--latency-ms", str(latency_ms)],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/v2/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def serve_fake(port: int, images: int, tags: int, latency_ms: int) -> None:
    fake = seeded_fake(images, tags, public_url=f"http://127.0.0.1:{port}")
    fake.faults.latency_ms = latency_ms
    serve("127.0.0.1", port, fake)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20, help="tags per image in the latency run")
    parser.add_argument("--big-repo-tags", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--oci-images", type=int, default=50, help="images in the OCI latency run")
    parser.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.images, args.tags, args.latency_ms)
        return

    with tempfile.TemporaryDirectory() as tmp:

        def fresh(name: str) -> str:
            return f"sqlite+aiosqlite:///{Path(tmp) / name}.db"

        first, rescan = asyncio.run(request_counts(fresh("big"), args.big_repo_tags))
        print(
            f"first scan of a {args.big_repo_tags}-tag repository: {first} requests (target ≤ 11)"
        )
        print(f"rescan of the unchanged repository:      {rescan} request(s) (target = 1)")
        oci_requests, pages = asyncio.run(oci_rescan(fresh("oci-big"), args.big_repo_tags))
        print(
            f"OCI rescan of an unchanged {args.big_repo_tags}-tag repository, 5 tracked tags: "
            f"{oci_requests} requests (target: {pages} tags/list pages + 5 = {pages + 5})"
        )
        heads, manifests, blobs = asyncio.run(oci_shared_digests(fresh("oci-shared")))
        bound = 2 * (1 + PLATFORMS + 1)
        print(
            f"OCI first scan of 106 tags on 2 digests: {heads} HEADs, {manifests} manifest GETs "
            f"and {blobs} config GETs = {manifests + blobs} GETs (target ≤ 2 × (index + "
            f"{PLATFORMS} platform manifests + config) = {bound})"
        )

        # Each run gets an empty database of its kind.
        databases: list[tuple[str, Callable[[str], str]]] = [("SQLite", fresh)]
        pg_server = os.environ.get("TAGWARDEN_BENCH_POSTGRES_URL")
        if pg_server:
            databases.append(("PostgreSQL", lambda _: fresh_postgres(pg_server)))
        images = max(args.images, args.oci_images)
        with fake_in_subprocess(images, args.tags, args.latency_ms) as registry_url:
            for api, count, oci in (("Hub API", args.images, False),
                                    ("OCI", args.oci_images, True)):  # fmt: skip
                for label, database in databases:
                    url = database(f"many-{api}")
                    run = scan_times(url, registry_url, count, args.concurrency, oci=oci)
                    for scan, elapsed, requests in asyncio.run(run):
                        what = f"{api} {label} {scan}: {count} images"
                        print_ratio(what, elapsed, requests, args)


def print_ratio(what: str, elapsed: float, requests: int, args: argparse.Namespace) -> None:
    bound = requests * args.latency_ms / 1000 / args.concurrency
    ratio = elapsed / bound if bound else float("inf")
    target = "" if "baseline" in what else " (target ≤ 1.5)"
    print(
        f"{what}, {args.latency_ms} ms latency, concurrency {args.concurrency}: {requests} "
        f"requests in {elapsed:.2f} s; lower bound {bound:.2f} s; ratio {ratio:.2f}{target}"
    )


def fresh_postgres(server_url: str) -> str:
    """A new, empty database on that server (dropped and recreated each run)."""
    name = "tagwarden_bench_monitor"
    admin = Settings(database_url=server_url).database_url

    async def recreate() -> None:
        engine = make_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(recreate())
    return admin.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":
    main()


# -- registry-native listings (Quay, Harbor, GitHub Packages) ----------------------------------
# Kept apart from the Hub and OCI figures above and run after them; alone with
# ``python -c 'import runpy; runpy.run_path("bench/monitor_scan.py")["native_main"]()'``.

NATIVE_HOST = "127.0.0.1:5099"  # served in-process by the fake, never dialled
NATIVE_API = "http://127.0.0.1:5098"  # GitHub's API is on another host than its registry
NATIVE_KINDS = {"quay": "quay_tags", "harbor": "harbor_artifacts", "github": "github_versions"}


def native_settings(url: str, kind: str, token: str) -> Settings:
    from pydantic import SecretStr

    from tagwarden.config import RegistryCredentials

    entry = RegistryCredentials(
        url=f"http://{NATIVE_HOST}",
        kind=kind,  # type: ignore[arg-type]
        api_url=NATIVE_API if kind == "github" else None,
        username="bench",
        token=SecretStr(token),
    )
    return Settings(
        database_url=url,
        registries={NATIVE_HOST: entry},
        monitor_enabled=False,
        # The fake is served in-process: Syft, a separate program, could not reach it.
        sbom_syft=False,
    )


def native_fake(tags: int, platforms: tuple[str, ...]) -> tuple[FakeRegistry, str]:
    fake = FakeRegistry(hub_rate_limit=None, pull_limit=None)
    fake.add_repository("bench/app", tags, platforms=platforms)
    token = fake.native.add_api_token("bench")
    fake.add_user("bench", token)
    return fake, token


async def native_listing(kind: str, tags: int, platforms: tuple[str, ...]) -> tuple[int, int]:
    """(requests, tags listed) of one listing of ``bench/app`` through the kind's own API."""
    from tagwarden.registry.factory import client_for

    fake, token = native_fake(tags, platforms)
    settings = native_settings("sqlite+aiosqlite://", kind, token)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        client = client_for(NATIVE_HOST, settings, http, state=RegistryState())
        listed = [t async for t in client.iter_tags("bench/app", {})]
    return len(fake.stats.records), len(listed)


async def native_scans(url: str, kind: str, tags: int) -> tuple[int, int]:
    """(first scan, rescan) requests of the monitor over one image of ``tags`` tags."""
    fake, token = native_fake(tags, ("linux/amd64",))
    engine = make_engine(url)
    await upgrade(engine)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        session.add(Image(image_name="app", namespace="bench", registry_host=NATIVE_HOST,
                          approval_status="approved", watch_for_updates=True))  # fmt: skip
    try:
        async with httpx.AsyncClient(transport=fake.transport()) as http:
            settings = native_settings(url, kind, token)
            monitor = ImageMonitor(settings, sessionmaker, http, state=RegistryState())
            counts = []
            for _ in range(2):
                fake.stats.reset()
                summary = await monitor.run_once(force=True)
                if summary.errors:
                    raise SystemExit(f"{kind}: {summary.results[0].error}")
                counts.append(len(fake.stats.records))
    finally:
        await engine.dispose()
    return counts[0], counts[1]


def native_main(tags: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for kind, api in NATIVE_KINDS.items():
            single, listed = asyncio.run(native_listing(kind, tags, ("linux/amd64",)))
            print(f"{kind} ({api}) listing of {listed} single-platform tags: "
                  f"{single} requests (target ≤ 11)")  # fmt: skip
            multi, listed = asyncio.run(
                native_listing(kind, tags, ("linux/amd64", "linux/arm64/v8", "linux/arm/v7"))
            )
            print(f"{kind} ({api}) listing of {listed} three-platform tags: {multi} requests")
            first, rescan = asyncio.run(
                native_scans(f"sqlite+aiosqlite:///{Path(tmp) / kind}.db", kind, tags)
            )
            print(f"{kind} monitor, {tags} tags: first scan {first} requests, rescan {rescan}")


if __name__ == "__main__":
    native_main()  # after main() above: the native figures follow the Hub and OCI ones
