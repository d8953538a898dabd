"""OSV data and vulnerability evidence on both databases: import (files and all.zip, idempotent
by ``modified``), matching stored SBOMs, evidence against the previous approved tag, findings,
and the approval gate with its allowlist."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tagwarden.approvals import history
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.cli.main import app as cli
from tagwarden.db import utcnow
from tagwarden.vulnerabilities import service
from tagwarden.vulnerabilities.models import OsvAffected, OsvRecord
from tagwarden.vulnerabilities.osv import Record, files_in, read_file
from tests.factories import (
    CRITICAL_V3,
    MEDIUM_V3,
    add_image,
    add_sbom,
    apk,
    deb,
    osv_record,
    seed_request,
    write_osv,
)

runner = CliRunner()
D1 = "sha256:" + "d1" * 32
D2 = "sha256:" + "d2" * 32


def records(path: Path) -> list[Record]:
    return [r for f in files_in(path) for r in read_file(f)]


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession], path: Path
) -> service.RematchResult:
    async with sessionmaker() as session, session.begin():
        _, matched = await service.import_and_rematch(
            session,
            records(path),
            live=await history.live_digests(session),
            previous_of=history.previous_approved_many,
            actor="test",
        )
    return matched


ALPINE = [
    osv_record(
        "CVE-2026-1001",
        "Alpine:v3.20",
        "openssl",
        [{"introduced": "0"}, {"fixed": "3.3.2-r10"}],
        vector=CRITICAL_V3,
    ),
    osv_record(
        "CVE-2026-1002",
        "Alpine:v3.20",
        "busybox",
        [{"introduced": "0"}, {"fixed": "1.36.1-r2"}],
        vector=MEDIUM_V3,
    ),
]
DEBIAN = [
    osv_record(
        "DSA-5000-1",
        "Debian:12",
        "openssl",
        [{"introduced": "0"}, {"fixed": "3.0.15-1~deb12u1"}],
        aliases=("CVE-2026-2000",),
    ),
    # The aliased CVE's own record gives the Debian advisory its severity.
    osv_record(
        "CVE-2026-2000", "Debian:12", "unrelated", [{"introduced": "0"}], vector=CRITICAL_V3
    ),
    osv_record(
        "DLA-77-1",
        "Debian:12",
        "zlib",
        [{"introduced": "1:1.2.13.dfsg-1"}, {"fixed": "1:1.3.dfsg-1"}],
        db_severity="low",
    ),
]


def test_cli_import_of_files_and_an_archive_is_idempotent(cli_env: str, tmp_path: Path) -> None:
    write_osv(tmp_path / "osv", ALPINE)
    write_osv(tmp_path / "osv", DEBIAN, archive="all.zip")
    first = runner.invoke(cli, ["osv", "import", str(tmp_path / "osv")])
    assert first.exit_code == 0, first.output
    assert "5 read, 5 added, 0 replaced, 0 unchanged" in first.stdout
    assert "data date 2026-11-30T12:00:00+00:00" in first.stdout
    again = runner.invoke(cli, ["osv", "import", str(tmp_path / "osv")])
    assert "5 read, 0 added, 0 replaced, 5 unchanged" in again.stdout
    newer = dict(ALPINE[0], modified="2026-12-01T08:00:00.123456789Z")
    newer["affected"] = [dict(newer["affected"][0], versions=["3.3.2-r1"])]
    write_osv(tmp_path / "newer", [newer, dict(ALPINE[1], modified="2026-01-01T00:00:00Z")])
    updated = runner.invoke(cli, ["osv", "import", str(tmp_path / "newer")])
    # An older copy of a record never replaces the stored one.
    assert "2 read, 0 added, 1 replaced, 1 unchanged" in updated.stdout
    assert "data date 2026-12-01T08:00:00.123456+00:00" in updated.stdout
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.json").write_text("{not json")
    bad = runner.invoke(cli, ["osv", "import", str(tmp_path / "bad")])
    assert bad.exit_code == 2
    assert "not JSON" in " ".join(bad.output.split())


async def test_import_matches_stored_sboms_and_writes_evidence_against_the_previous_tag(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    tokens: Any,
    tmp_path: Path,
) -> None:
    image_id = await add_image(sessionmaker)
    await seed_request(
        sessionmaker,
        image_id,
        request_id=1,
        tag="1.0",
        metadata={"digest": D1, "architectures": ["amd64"]},
    )
    await seed_request(
        sessionmaker,
        image_id,
        request_id=2,
        tag="1.1",
        metadata={"digest": D2, "architectures": ["amd64"]},
    )
    async with sessionmaker() as session, session.begin():
        old = await session.get(ApprovalRequest, 1)
        assert old is not None
        old.status, old.reviewed_at = "approved", utcnow() - timedelta(days=1)
    await add_sbom(sessionmaker, D1, [apk("openssl", "3.3.2-r9"), apk("busybox", "1.36.1-r2")])
    await add_sbom(
        sessionmaker,
        D2,
        [apk("openssl", "3.3.2-r10"), apk("busybox", "1.36.1-r1"), apk("zlib", "1.3-r0")],
    )
    write_osv(tmp_path / "osv", ALPINE)
    matched = await run_import(sessionmaker, tmp_path / "osv")
    assert (matched.digests, matched.findings, matched.new_findings) == (2, 2, 2)
    viewer = tokens.headers("viewer")
    body = (await client.get("/api/v1/images/approvals/2", headers=viewer)).json()
    vulns = body["evidence"]["vulnerabilities"]
    assert vulns["status"] == "scanned"
    assert vulns["counts"] == {"critical": 0, "high": 0, "medium": 1, "low": 0, "unknown": 0}
    assert vulns["fixable"] == 1
    # openssl 3.3.2-r10 is the fix (r9 < r10 < r11, not "r10" < "r9"); busybox r1 < r2.
    assert (vulns["new"], vulns["fixed"]) == (["CVE-2026-1002"], ["CVE-2026-1001"])
    assert vulns["previous"] == {"tag": "1.0", "digest": D1}
    # The package diff against the same previous tag, a single one for one platform.
    assert vulns["packages"] == {
        "added": [{"name": "zlib", "ecosystem": "Alpine:v3.20", "version": "1.3-r0"}],
        "removed": [],
        "upgraded": [
            {"name": "busybox", "ecosystem": "Alpine:v3.20", "previous": "1.36.1-r2",
             "current": "1.36.1-r1"},
            {"name": "openssl", "ecosystem": "Alpine:v3.20", "previous": "3.3.2-r9",
             "current": "3.3.2-r10"},
        ],
    }  # fmt: skip
    assert vulns["osv_data"].startswith("2026-11-30T12:00:00")
    first = (await client.get("/api/v1/images/approvals/1", headers=viewer)).json()
    assert first["evidence"]["vulnerabilities"]["new"] == ["CVE-2026-1001"]  # no earlier tag
    assert len(first["evidence"]["vulnerabilities"]["packages"]["added"]) == 2
    listed = await client.get("/api/v1/images/approvals/2/vulnerabilities", headers=viewer)
    assert listed.status_code == 200, listed.text
    assert listed.json() == [
        {
            "id": "CVE-2026-1002",
            "package": "busybox",
            "ecosystem": "Alpine:v3.20",
            "installed": "1.36.1-r1",
            "fixed_in": "1.36.1-r2",
            "severity": "medium",
            "aliases": [],
            "digest": D2,
        }
    ]
    missing = await client.get("/api/v1/images/approvals/99/vulnerabilities", headers=viewer)
    assert missing.status_code == 404
    # Re-importing the same data finds nothing new and stores nothing twice.
    again = await run_import(sessionmaker, tmp_path / "osv")
    assert (again.findings, again.new_findings) == (2, 0)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OsvRecord)) == 2
        assert await session.scalar(select(func.count()).select_from(OsvAffected)) == 2


async def test_debian_epochs_tildes_source_packages_and_alias_severity(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    image_id = await add_image(sessionmaker)
    await seed_request(
        sessionmaker,
        image_id,
        request_id=5,
        tag="bookworm",
        metadata={"digest": D1, "architectures": ["amd64"]},
    )
    await add_sbom(
        sessionmaker,
        D1,
        [
            deb("libssl3", "3.0.15-1~deb12u0", source="openssl"),  # ~deb12u0 < ~deb12u1: hit
            deb("zlib1g", "1:1.2.13.dfsg-1", source="zlib"),  # the introduced edge itself
            deb("zlib", "1.4-1"),  # no epoch: older than 1:1.2.13, not affected
        ],
    )
    write_osv(tmp_path / "osv", DEBIAN, archive="all.zip")
    await run_import(sessionmaker, tmp_path / "osv")
    async with sessionmaker() as session:
        found = await service.findings_of(session, image_id, D1)
    assert sorted((f.osv_id, f.package, f.severity, f.fixed_in) for f in found) == [
        ("DLA-77-1", "zlib1g", "low", "1:1.3.dfsg-1"),
        ("DSA-5000-1", "libssl3", "critical", "3.0.15-1~deb12u1"),
    ]


async def policy(client: httpx.AsyncClient, tokens: Any, image_id: int, **body: Any) -> None:
    response = await client.put(
        f"/api/v1/images/{image_id}/policy", json=body, headers=tokens.headers("admin")
    )
    assert response.status_code == 200, response.text


async def test_the_gate_blocks_approval_until_allowlisted_and_an_expired_entry_blocks_again(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    tokens: Any,
    tmp_path: Path,
) -> None:
    image_id = await add_image(sessionmaker)
    await seed_request(
        sessionmaker,
        image_id,
        request_id=7,
        tag="1.0",
        metadata={"digest": D1, "architectures": ["amd64"]},
    )
    await add_sbom(sessionmaker, D1, [apk("openssl", "3.3.2-r2")])
    unfixed = osv_record(
        "CVE-2026-3000", "Alpine:v3.20", "openssl", [{"introduced": "0"}], vector=CRITICAL_V3
    )
    write_osv(tmp_path / "osv", [ALPINE[0], unfixed])
    await run_import(sessionmaker, tmp_path / "osv")
    approver = tokens.headers("approver")

    async def approve() -> httpx.Response:
        return await client.post(
            "/api/v1/images/approvals/7/approve", json={"notes": "ok"}, headers=approver
        )

    await policy(client, tokens, image_id, vulnerabilities={"block_severity": "high"})
    blocked = await approve()
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["code"] == "vulnerabilities_blocked"
    assert "CVE-2026-1001" in blocked.json()["detail"]
    assert "CVE-2026-3000" in blocked.json()["detail"]
    # only_fixable: the finding without a fix no longer counts; the fixable one still does.
    await policy(
        client, tokens, image_id, vulnerabilities={"block_severity": "high", "only_fixable": True}
    )
    still = await approve()
    assert still.status_code == 409
    assert "CVE-2026-3000" not in still.json()["detail"]
    expired = (utcnow() - timedelta(hours=1)).isoformat()
    await policy(
        client,
        tokens,
        image_id,
        vulnerabilities={
            "block_severity": "high",
            "only_fixable": True,
            "allowlist": [{"id": "CVE-2026-1001", "reason": "old entry", "expires": expired}],
        },
    )
    assert (await approve()).status_code == 409  # an expired entry no longer applies
    future = (utcnow() + timedelta(days=30)).isoformat()
    await policy(
        client,
        tokens,
        image_id,
        vulnerabilities={
            "block_severity": "high",
            "only_fixable": True,
            "allowlist": [{"id": "CVE-2026-1001", "reason": "not reachable", "expires": future}],
        },
    )
    shown = await client.get(f"/api/v1/images/{image_id}/policy", headers=approver)
    assert shown.json()["vulnerabilities"]["allowlist"][0]["reason"] == "not reachable"
    approved = await approve()
    assert approved.status_code == 200, approved.text
