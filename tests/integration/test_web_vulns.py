"""The vulnerabilities on the admin pages: the approval card's part, the recalled badge on an
image's tags and the fleet view of a digest, on both databases."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.card_data import PREVIOUS_DIGEST, add_request, digest_of
from tests.factories import activate, add_image, add_redis, register, report
from tests.integration.test_web import login
from tests.integration.test_web_card import set_policy
from tests.vuln_card_data import PACKAGES, add_findings, recall, target

PREVIOUS = {"tag": "7.2.4", "digest": PREVIOUS_DIGEST}


def part(html: str, marker: str) -> str:
    found = re.search(rf"<[a-z]+ [^>]*{marker}.*?</(li|dd|table|p|tr|option)>", html, re.S)
    assert found, f"{marker} is not on the page"
    return found.group(0)


async def test_the_card_shows_counts_in_the_policys_colours_new_fixed_packages_findings(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await set_policy(client, tokens, image["id"], vulnerabilities={"block_severity": "high"})
    request_id = await add_request(sessionmaker, image["id"], "7.2.5", digest_of(1))
    await add_findings(
        sessionmaker, image["id"], digest_of(1), previous=PREVIOUS, packages=PACKAGES
    )
    await login(client, tokens.viewer)
    html = (await client.get(f"/approvals/{request_id}")).text
    assert "<h3>Vulnerabilities</h3>" in html
    assert 'class="badge tone-danger" data-vulns="status">3 findings' in html
    assert 'tone-danger">critical 1<' in part(html, 'data-severity="critical"')
    assert 'tone-danger">high 1<' in part(html, 'data-severity="high"')
    assert 'tone-muted">low 1<' in part(html, 'data-severity="low"')
    assert 'tone-ok">medium 0<' in part(html, 'data-severity="medium"')
    assert "fixable</span> 2" in part(html, 'data-vulns="fixable"')
    assert 'datetime="2026-11-28T06:00:00+00:00"' in part(html, 'data-vulns="osv-data"')
    assert "CVE-2026-1111, CVE-2026-2222" in part(html, 'data-vulns="blocked"')
    previous = part(html, 'data-vulns="previous"')
    assert "7.2.4" in previous
    assert PREVIOUS_DIGEST in previous
    new = part(html, 'data-vulns="new"')
    assert "CVE-2026-1111" in new
    assert "CVE-2026-3333" in new
    assert "CVE-2026-2222" not in new
    assert "CVE-2025-9999" in part(html, 'data-vulns="fixed"')
    assert "Packages since 7.2.4" in html
    assert "curl" in part(html, 'data-change="added"')
    assert "wget" in part(html, 'data-change="removed"')
    assert "3.0.11-1~deb12u2 → 3.0.13-1~deb12u1" in part(html, 'data-change="upgraded"')
    critical = part(html, 'data-finding="CVE-2026-1111"')
    for text in ("openssl", "3.0.13-1~deb12u1", "3.0.15-1~deb12u1", "DSA-5800-1"):
        assert text in critical
    assert 'tone-danger">critical<' in critical
    high = part(html, 'data-finding="CVE-2026-2222"')
    assert "no fix" in high
    assert 'tone-muted">low<' in part(html, 'data-finding="CVE-2026-3333"')


async def test_a_request_without_findings_or_package_diff_says_so(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    bare = await add_request(sessionmaker, image["id"], "7.2.6", digest_of(2))
    clean = await add_request(sessionmaker, image["id"], "7.2.7", digest_of(3))
    await add_findings(sessionmaker, image["id"], digest_of(3), found=())
    await login(client, tokens.viewer)
    html = (await client.get(f"/approvals/{bare}")).text
    assert 'data-vulns="status">not matched yet' in html
    assert 'data-vulns="findings"' not in html
    html = (await client.get(f"/approvals/{clean}")).text
    assert 'class="badge tone-ok" data-vulns="status">no findings' in html
    assert "no previous approved tag" in part(html, 'data-vulns="previous"')
    assert 'data-vulns="packages"' not in html  # the diff is not known yet


async def test_a_recalled_tag_has_a_badge_linking_to_the_fleet_running_or_targeted_with_it(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    admin = tokens.headers("admin")
    image = await add_redis(client, admin)
    await activate(sessionmaker, image["id"], "7.2.5", digest_of(1))
    await activate(sessionmaker, image["id"], "7.2.6", digest_of(2))
    await recall(sessionmaker, image["id"], "7.2.5", "CVE-2026-1111 (critical) in openssl")
    runs = await register(client, admin, "dev-runs")
    await report(client, "dev-runs", runs, digest=digest_of(1))
    await register(client, admin, "dev-targeted")
    await target(sessionmaker, "dev-targeted", digest_of(1))
    other = await register(client, admin, "dev-other")
    await report(client, "dev-other", other, digest=digest_of(2))
    await login(client, tokens.viewer)

    html = (await client.get(f"/images/{image['id']}")).text
    tag = part(html, 'data-tag="7.2.5"')
    link = f'href="/devices?digest={digest_of(1).replace(":", "%3A")}"'
    assert 'data-recalled="7.2.5"' in tag
    assert link in tag
    assert "CVE-2026-1111 (critical) in openssl" in tag
    assert 'datetime="2026-12-01T08:15:00+00:00"' in tag
    assert "data-recalled" not in part(html, 'data-tag="7.2.6"')

    fleet = await client.get(f"/devices?digest={digest_of(1)}")
    assert fleet.status_code == 200
    listed = set(re.findall(r'<tr data-device="([^"]+)"', fleet.text))
    assert listed == {"dev-runs", "dev-targeted"}
    assert 'data-fleet="running"' in part(fleet.text, 'data-device="dev-runs"')
    assert 'data-fleet="targeted"' in part(fleet.text, 'data-device="dev-targeted"')
    assert "2 devices" in fleet.text

    nobody = await client.get(f"/devices?digest={digest_of(9)}")
    assert 'data-fleet="none"' in nobody.text
    bad = await client.get("/devices?digest=latest")
    assert bad.status_code == 422


async def test_the_rollout_form_marks_a_recalled_tag_with_its_reason(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5", digest_of(1))
    await activate(sessionmaker, image_id, "7.2.6", digest_of(2))
    await recall(sessionmaker, image_id, "7.2.5", "CVE-2026-1111 (critical) in openssl")
    await login(client, tokens.approver)
    html = (await client.get("/rollouts")).text
    recalled = part(html, f'value="{image_id}:7.2.5"')
    assert 'data-recalled="7.2.5"' in recalled
    assert "(recalled: CVE-2026-1111 (critical) in openssl)" in recalled
    assert "recalled" not in part(html, f'value="{image_id}:7.2.6"')
