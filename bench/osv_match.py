"""Benchmark: OSV import and a full re-match of stored SBOMs.

Generates an OSV set of N records (default 200,000; Alpine:v3.20 and Debian:12 packages, apk
and dpkg ranges) as the ecosystems' ``all.zip`` archives, imports it through ``tagwarden osv
import``'s use case, and re-matches M stored SBOMs (default 1,000) of P packages each (default
300), all of them activated digests. Prints the import time, the re-match time (target < 60 s)
and matches per second (package x indexed record evaluations). Runs on a temporary SQLite
database, and on a fresh PostgreSQL database too when TAGWARDEN_BENCH_POSTGRES_URL names a
server (e.g. postgresql://postgres@127.0.0.1:5432/test). Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from tagwarden.catalogue.models import Image, ImageTag  # noqa: E402
from tagwarden.config import Settings  # noqa: E402
from tagwarden.db import make_engine, make_sessionmaker  # noqa: E402
from tagwarden.migrations import upgrade  # noqa: E402
from tagwarden.vulnerabilities import service  # noqa: E402
from tagwarden.vulnerabilities.importer import import_records  # noqa: E402
from tagwarden.vulnerabilities.matching import index_keys  # noqa: E402
from tagwarden.vulnerabilities.models import Sbom  # noqa: E402
from tagwarden.vulnerabilities.osv import files_in, read_file  # noqa: E402

ECOSYSTEMS = ("Alpine:v3.20", "Debian:12")
VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def version(ecosystem: str, rng: random.Random, major: int | None = None) -> str:
    major = rng.randint(1, 3) if major is None else major
    minor, patch = rng.randint(0, 20), rng.randint(0, 30)
    if ecosystem.startswith("Alpine"):
        return f"{major}.{minor}.{patch}-r{rng.randint(0, 12)}"
    epoch = "1:" if rng.random() < 0.2 else ""
    return f"{epoch}{major}.{minor}.{patch}-{rng.randint(1, 5)}~deb12u{rng.randint(0, 3)}"


def generate(directory: Path, records: int, names: int, rng: random.Random) -> None:
    """``records`` records spread over ``names`` package names per ecosystem."""
    per = records // len(ECOSYSTEMS)
    for ecosystem in ECOSYSTEMS:
        slug = ecosystem.replace(":", "-")
        with zipfile.ZipFile(directory / f"{slug}-all.zip", "w", zipfile.ZIP_DEFLATED) as out:
            for i in range(per):
                # Most advisories were fixed long before the versions installed (major 0 here,
                # 1 to 3 installed); one in twenty reaches the installed versions.
                fixed = version(ecosystem, rng, None if rng.random() < 0.05 else 0)
                record: dict[str, Any] = {
                    "id": f"{slug.upper()}-{i}",
                    "modified": "2026-11-30T12:00:00Z",
                    "aliases": [f"CVE-2026-{i}"],
                    "affected": [
                        {
                            "package": {
                                "ecosystem": ecosystem,
                                "name": f"pkg{rng.randrange(names)}",
                            },
                            "ranges": [
                                {
                                    "type": "ECOSYSTEM",
                                    "events": [{"introduced": "0"}, {"fixed": fixed}],
                                }
                            ],
                        }
                    ],
                }
                if i % 3 == 0:
                    record["severity"] = [{"type": "CVSS_V3", "score": VECTOR}]
                out.writestr(f"{record['id']}.json", json.dumps(record))


async def seed(url: str, sboms: int, packages: int, names: int, rng: random.Random) -> None:
    """``sboms`` activated single-platform digests (ten per image), each with its SBOM."""
    engine = make_engine(url)
    await upgrade(engine)
    async with make_sessionmaker(engine)() as session, session.begin():
        images = [
            {"image_name": f"app{i}", "approval_status": "approved"} for i in range(sboms // 10 + 1)
        ]
        await session.execute(insert(Image), images)
        ids = list((await session.execute(text("SELECT id FROM images ORDER BY id"))).scalars())
        tags, rows = [], []
        for n in range(sboms):
            digest = f"sha256:{n:064x}"
            ecosystem = ECOSYSTEMS[n % len(ECOSYSTEMS)]
            chosen = rng.sample(range(names), packages)
            pkgs = [
                {
                    "name": f"pkg{c}",
                    "version": version(ecosystem, rng),
                    "purl": "",
                    "ecosystem": ecosystem,
                }
                for c in chosen
            ]
            rows.append(
                {"digest": digest, "status": "generated", "source": "syft", "packages": pkgs}
            )
            tags.append(
                {"image_id": ids[n // 10], "tag": f"1.{n % 10}", "architecture": "amd64",
                 "digest": digest, "metadata_": {}}
            )  # fmt: skip
        await session.execute(insert(Sbom), rows)
        await session.execute(insert(ImageTag), tags)
    await engine.dispose()


async def run(url: str, data: Path) -> tuple[float, float, int, service.RematchResult]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            started, cpu = time.perf_counter(), time.process_time()
            found = (r for f in files_in(data) for r in read_file(f))
            imported = await import_records(session, found)
            import_s = time.perf_counter() - started
            print(f"  import CPU time of this process: {time.process_time() - cpu:.1f} s")
            assert imported.added > 0
        async with make_sessionmaker(engine)() as session, session.begin():
            started, cpu = time.perf_counter(), time.process_time()
            matched = await service.rematch_all(session, actor="bench")
            rematch_s = time.perf_counter() - started
            print(f"  re-match CPU time of this process: {time.process_time() - cpu:.1f} s")
            evaluations = await _evaluations(session)
    finally:
        await engine.dispose()
    return import_s, rematch_s, evaluations, matched


async def _evaluations(session: Any) -> int:
    """How many (package, indexed record) pairs a full re-match evaluates."""
    counts = dict(
        (
            await session.execute(
                text("SELECT ecosystem || '|' || name, count(*) FROM osv_affected GROUP BY 1")
            )
        ).all()
    )
    total = 0
    for (packages,) in await session.execute(text("SELECT packages FROM sboms")):
        listed = json.loads(packages) if isinstance(packages, str) else packages
        for package in listed:
            total += sum(counts.get(f"{e}|{n}", 0) for e, n in index_keys(package))
    return int(total)


def fresh_postgres(server_url: str) -> str:
    name = "tagwarden_bench_osv"
    admin = Settings(database_url=server_url).database_url

    async def recreate() -> None:
        engine = make_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(recreate())
    return admin.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--sboms", type=int, default=1_000)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--names", type=int, default=20_000, help="package names per ecosystem")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "osv"
        data.mkdir()
        started = time.perf_counter()
        generate(data, args.records, args.names, random.Random(14))
        print(f"generated {args.records} OSV records in {time.perf_counter() - started:.1f} s")
        databases = [("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'osv.db'}")]
        pg_server = os.environ.get("TAGWARDEN_BENCH_POSTGRES_URL")
        if pg_server:
            databases.append(("PostgreSQL", fresh_postgres(pg_server)))
        for label, url in databases:
            asyncio.run(seed(url, args.sboms, args.packages, args.names, random.Random(3)))
            import_s, rematch_s, evaluations, matched = asyncio.run(run(url, data))
            print(
                f"{label}: import of {args.records} records {import_s:.1f} s; re-match of "
                f"{matched.digests} SBOMs x {args.packages} packages ({matched.packages} packages) "
                f"{rematch_s:.1f} s (target < 60 s); {evaluations} matches evaluated, "
                f"{evaluations / rematch_s:,.0f} matches/s; {matched.findings} findings, "
                f"{len(matched.recalled)} recalls"
            )


if __name__ == "__main__":
    main()
