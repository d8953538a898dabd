"""The admin pages in Debian's chromium against a live server, on both databases."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.db import make_engine, make_sessionmaker
from tests.e2e.conftest import Browser, LiveServer, run_async
from tests.factories import DIGEST, SEED_METADATA

pytestmark = pytest.mark.browser


def expect(page_or_locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(page_or_locator)


def add_image(server: LiveServer, name: str = "redis") -> int:
    response = server.api.post(
        "/api/v1/images",
        json={"image_name": name, "category": "cache"},
        headers=server.headers("admin"),
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def seed_requests(server: LiveServer, image_id: int, tags: list[str]) -> list[int]:
    """Pending requests as the monitor writes them (source image_monitor)."""

    async def insert() -> list[int]:
        engine = make_engine(server.database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                rows = [
                    ApprovalRequest(
                        image_id=image_id,
                        image_name="redis",
                        tag_name=tag,
                        status="pending",
                        metadata_=dict(SEED_METADATA),
                        digest=DIGEST,
                        requested_by="image_monitor",
                    )
                    for tag in tags
                ]
                session.add_all(rows)
                await session.flush()
                return [r.id for r in rows]
        finally:
            await engine.dispose()

    return run_async(insert())


def request_status(server: LiveServer, request_id: int) -> str:
    response = server.api.get(
        f"/api/v1/images/approvals/{request_id}", headers=server.headers("viewer")
    )
    return str(response.json()["status"])


def row(browser: Browser, reference: str) -> Any:
    return browser.page.locator(f'tr[data-request="{reference}"]')


def test_review_approve_reject_and_bulk_approve(browser: Browser) -> None:
    server, page = browser.server, browser.page
    image_id = add_image(server)
    ids = seed_requests(server, image_id, ["7.2.5-alpine", "7.2.4", "7.2.3", "7.2.2"])
    page.goto(f"{server.url}/login")
    browser.shot("login")
    browser.login("approver")
    expect(page.get_by_role("status")).to_contain_text("Signed in as approver@example.com")
    browser.shot("approvals")

    first = row(browser, "redis:7.2.5-alpine")
    expect(first.get_by_title(DIGEST)).to_have_text(re.compile(r"^sha256:abc123abc123$"))
    expect(first).to_contain_text("auto-detected")
    expect(first).to_contain_text("amd64")
    first.get_by_label("Notes for redis:7.2.5-alpine").fill("Security patches included")
    first.get_by_role("button", name="Approve redis:7.2.5-alpine").click()
    expect(page.get_by_role("status")).to_contain_text("Approved redis:7.2.5-alpine")
    expect(row(browser, "redis:7.2.5-alpine")).to_have_count(0)

    second = row(browser, "redis:7.2.4")
    second.get_by_label("Notes for redis:7.2.4").fill("superseded by 7.2.5")
    second.get_by_role("button", name="Reject redis:7.2.4").click()
    expect(page.get_by_role("status")).to_contain_text("Rejected redis:7.2.4")

    page.get_by_label("Select redis:7.2.3").check()
    page.get_by_label("Select redis:7.2.2").check()
    expect(page.locator("[data-selected-count]")).to_have_text("2 selected")
    page.get_by_role("button", name="Approve selected").click()
    expect(page.get_by_role("status")).to_contain_text("2 requests approved")
    expect(page.get_by_text("No pending approval requests")).to_be_visible()
    assert [request_status(server, i) for i in ids] == [
        "approved",
        "rejected",
        "approved",
        "approved",
    ]

    page.get_by_role("link", name="History").click()
    expect(page.locator(f"#request-{ids[1]}")).to_contain_text("superseded by 7.2.5")
    expect(page.locator(f"#request-{ids[0]}")).to_contain_text("Security patches included")
    browser.shot("history")

    page.get_by_role("link", name="Images").click()
    browser.shot("images")
    page.get_by_role("link", name="redis").click()
    tags = page.locator("table.tags")
    expect(tags.locator('tr[data-tag="7.2.5-alpine"]')).to_contain_text("arm64")
    expect(tags.locator("tbody tr")).to_have_count(3)
    tags.get_by_role("button", name="Recommended: 7.2.5-alpine").click()
    expect(page.get_by_role("status")).to_contain_text("marked recommended")
    expect(page.get_by_role("button", name="Recommended: 7.2.5-alpine")).to_have_attribute(
        "aria-pressed", "true"
    )
    browser.shot("image-detail")

    for name in ("monitor", "audit"):
        page.goto(f"{server.url}/{name}")
        browser.shot(name)
    expect(page.locator("table.audit")).to_contain_text("approval.rejected")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/approvals/history")
    browser.shot("history-phone")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone layout scrolls sideways ({width}px)"


def test_viewer_sees_no_approve_button_and_a_forged_post_is_refused(browser: Browser) -> None:
    server, page = browser.server, browser.page
    image_id = add_image(server)
    (request_id,) = seed_requests(server, image_id, ["7.2.5-alpine"])
    browser.login("viewer")
    expect(row(browser, "redis:7.2.5-alpine")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Reject"))).to_have_count(0)
    browser.shot("approvals-viewer")
    # A hand-made post with the viewer's own valid CSRF token: the server still says no.
    status = page.evaluate(
        """async (id) => {
            const csrf = document.querySelector('input[name=csrf_token]').value;
            const body = new URLSearchParams({csrf_token: csrf, decision: 'approve'});
            const r = await fetch(`/approvals/${id}/decide`, {method: 'POST', body});
            return r.status;
        }""",
        request_id,
    )
    assert status == 403
    assert request_status(server, request_id) == "pending"


def test_a_form_post_without_its_csrf_token_is_refused(browser: Browser) -> None:
    server, page = browser.server, browser.page
    image_id = add_image(server)
    (request_id,) = seed_requests(server, image_id, ["7.2.5-alpine"])
    browser.login("approver")
    page.evaluate(
        "document.querySelectorAll('form.decide input[name=csrf_token]').forEach((i) => i.remove())"
    )
    page.get_by_role("button", name="Approve redis:7.2.5-alpine").click()
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("CSRF")
    browser.shot("csrf-refused")
    assert request_status(server, request_id) == "pending"


def _register(server: LiveServer, uuid: str) -> str:
    response = server.api.post(
        "/api/v1/devices",
        json={"uuid": uuid, "name": f"edge {uuid}", "architecture": "amd64"},
        headers=server.headers("admin"),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["device_key"])


def _report_if_targeted(server: LiveServer, uuid: str, key: str) -> bool:
    """A simulated device: poll the target state; if redis is targeted, report it healthy."""
    auth = {"Authorization": f"Bearer {key}"}
    state = server.api.get(f"/api/v1/device/{uuid}/state", headers=auth).json()
    target = state.get("apps", {}).get("redis")
    if not target:
        return False
    report = {"image": target["image"], "digest": target["digest"]}
    body = {"apps": {"redis": {**report, "status": "running", "health": "healthy"}}}
    response = server.api.patch(f"/api/v1/device/{uuid}/state", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return True


def test_a_canary_rollout_progress_bar_moves_as_devices_report(browser: Browser) -> None:
    server, page = browser.server, browser.page
    image_id = add_image(server)
    (request_id,) = seed_requests(server, image_id, ["7.2.5-alpine"])
    approved = server.api.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=server.headers("approver")
    )
    assert approved.status_code == 200, approved.text
    keys = {uuid: _register(server, uuid) for uuid in ("edge-1", "edge-2", "edge-3")}

    browser.login("approver")
    page.get_by_role("link", name="Rollouts").click()
    page.get_by_label("Approved tag").select_option(f"{image_id}:7.2.5-alpine")
    page.get_by_label("Strategy").select_option("canary")
    page.get_by_label("Canary devices").fill("1")
    page.get_by_label("Healthy for (seconds) before a device counts").fill("0")
    for uuid in keys:
        page.get_by_label(re.compile(f"edge {uuid}")).check()
    browser.shot("rollouts-form")
    page.get_by_role("button", name="Create rollout").click()
    expect(page.get_by_role("status")).to_contain_text("created (2 batches)")
    expect(page.locator("[data-field=status]")).to_have_text("running")
    overall = page.locator("[data-bar=overall]")
    expect(overall).to_have_attribute("aria-valuenow", "0")
    expect(page.locator("[data-batch='1'] [data-field=batch-text]")).to_contain_text("1 updating")
    browser.shot("rollout-started")

    reported: set[str] = set()
    deadline = time.monotonic() + 20
    while page.locator("[data-field=status]").inner_text() != "completed":
        assert time.monotonic() < deadline, "the rollout did not complete"
        for uuid, key in keys.items():
            if uuid not in reported and _report_if_targeted(server, uuid, key):
                reported.add(uuid)
        if len(reported) == 1:
            # The canary reported; the page, never reloaded, shows its batch done.
            expect(page.locator("[data-batch='1'] [data-field=batch-text]")).to_contain_text(
                "1/1 succeeded"
            )
            expect(overall).to_have_attribute("aria-valuenow", "33")
            browser.shot("rollout-canary-done")
        page.wait_for_timeout(300)
    expect(overall).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("[data-batch='2'] [data-field=batch-text]")).to_contain_text(
        "2/2 succeeded"
    )
    expect(page.locator("tr[data-device] [data-field=state]")).to_have_text(
        ["succeeded", "succeeded", "succeeded"]
    )
    expect(page.get_by_role("button", name="Roll back")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    browser.shot("rollout-completed")
    page.get_by_role("link", name="Devices").click()
    expect(page.locator('tr[data-device="edge-1"]')).to_contain_text("in sync")
    browser.shot("devices")
