"""The vulnerabilities in Debian's chromium: a request's findings on its card, and a recalled
tag's badge leading to the fleet that runs its digest, on both databases."""

from __future__ import annotations

import pytest

from tagwarden.db import make_engine, make_sessionmaker
from tests.card_data import PREVIOUS_DIGEST, add_request, digest_of
from tests.e2e.conftest import Browser, LiveServer, run_async
from tests.e2e.test_admin_ui import add_image, expect
from tests.factories import activate
from tests.vuln_card_data import PACKAGES, add_findings, recall

pytestmark = pytest.mark.browser


def seed(server: LiveServer, image_id: int) -> int:
    """A request with findings against 7.2.4, and the activated 7.2.3 recalled."""

    async def insert() -> int:
        engine = make_engine(server.database_url)
        try:
            sessions = make_sessionmaker(engine)
            request_id = await add_request(sessions, image_id, "7.2.5", digest_of(1))
            await add_findings(
                sessions,
                image_id,
                digest_of(1),
                previous={"tag": "7.2.4", "digest": PREVIOUS_DIGEST},
                packages=PACKAGES,
            )
            await activate(sessions, image_id, "7.2.3", digest_of(3))
            await recall(sessions, image_id, "7.2.3", "CVE-2026-1111 (critical) in openssl")
            return request_id
        finally:
            await engine.dispose()

    return run_async(insert())


def device_running(server: LiveServer, uuid: str, digest: str) -> None:
    made = server.api.post(
        "/api/v1/devices",
        json={"uuid": uuid, "architecture": "amd64", "labels": {}},
        headers=server.headers("admin"),
    )
    assert made.status_code == 201, made.text
    key = made.json()["device_key"]
    state = {"image": f"redis:7.2.3@{digest}", "status": "running", "health": "healthy"}
    reported = server.api.patch(
        f"/api/v1/device/{uuid}/state",
        json={"apps": {"redis": state}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert reported.status_code == 200, reported.text


def test_findings_on_the_card_and_a_recalled_tags_fleet(browser: Browser) -> None:
    server, page = browser.server, browser.page
    image_id = add_image(server)
    policy = server.api.put(
        f"/api/v1/images/{image_id}/policy",
        json={"vulnerabilities": {"block_severity": "high"}},
        headers=server.headers("admin"),
    )
    assert policy.status_code == 200, policy.text
    request_id = seed(server, image_id)
    device_running(server, "edge-recalled", digest_of(3))
    device_running(server, "edge-fine", digest_of(4))
    browser.login("approver")

    page.goto(f"{server.url}/approvals/{request_id}")
    vulns = page.locator('[data-evidence="vulnerabilities"]')
    expect(page.get_by_role("heading", name="Vulnerabilities")).to_be_visible()
    expect(vulns.locator('[data-vulns="status"]')).to_have_text("3 findings")
    expect(vulns.locator('[data-severity="critical"] .badge')).to_have_class("badge tone-danger")
    expect(vulns.locator('[data-severity="low"] .badge')).to_have_class("badge tone-muted")
    expect(vulns.locator('[data-vulns="previous"]')).to_contain_text("7.2.4")
    expect(vulns.locator('[data-vulns="new"]')).to_contain_text("CVE-2026-1111")
    expect(vulns.locator('[data-vulns="fixed"]')).to_contain_text("CVE-2025-9999")
    expect(vulns.locator('[data-change="upgraded"]')).to_contain_text("openssl")
    findings = vulns.get_by_role("table")
    expect(findings.get_by_role("row")).to_have_count(4)  # the header and three findings
    critical = findings.locator('[data-finding="CVE-2026-1111"]')
    expect(critical).to_contain_text("3.0.15-1~deb12u1")
    expect(critical).to_contain_text("DSA-5800-1")
    browser.shot("approval-card-vulnerabilities")

    page.goto(f"{server.url}/images/{image_id}")
    badge = page.locator('[data-recalled="7.2.3"]')
    expect(badge).to_have_text("recalled")
    expect(page.locator('[data-tag="7.2.3"]')).to_contain_text("CVE-2026-1111 (critical)")
    browser.shot("image-recalled-tag")
    with page.expect_navigation():
        badge.click()
    assert page.url.endswith(f"/devices?digest={digest_of(3).replace(':', '%3A')}"), page.url
    expect(page.locator('[data-device="edge-recalled"]')).to_be_visible()
    expect(page.locator('[data-device="edge-fine"]')).to_have_count(0)
    expect(page.locator('[data-fleet="running"]')).to_have_text("runs it")
    expect(page.get_by_label("Running or targeted with digest")).to_have_value(digest_of(3))
    browser.shot("fleet-of-recalled-digest")
