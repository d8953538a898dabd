"""The approval card in Debian's chromium: signer and sizes of a request with stored evidence,
on both databases."""

from __future__ import annotations

import pytest

from tagwarden.db import make_engine, make_sessionmaker
from tests.card_data import GREW, SIGNED, add_request, digest_of, signature
from tests.e2e.conftest import Browser, LiveServer, run_async
from tests.e2e.test_admin_ui import add_image, expect, row

pytestmark = pytest.mark.browser


def seed(server: LiveServer, image_id: int) -> tuple[int, int]:
    """A signed request that grew on two architectures, and an unsigned one."""

    async def insert() -> tuple[int, int]:
        engine = make_engine(server.database_url)
        try:
            sessions = make_sessionmaker(engine)
            signed = await add_request(
                sessions,
                image_id,
                "7.2.5",
                digest_of(1),
                metadata={"also_tagged": ["latest"]},
                signed=SIGNED,
                sized=GREW,
            )
            unsigned = await add_request(
                sessions, image_id, "7.2.6", digest_of(2), signed=signature("unsigned")
            )
            return signed, unsigned
        finally:
            await engine.dispose()

    return run_async(insert())


def test_the_approval_card_shows_the_signer_and_the_sizes(browser: Browser) -> None:
    server, page = browser.server, browser.page
    image_id = add_image(server)
    policy = server.api.put(
        f"/api/v1/images/{image_id}/policy",
        json={"signature": {"mode": "enforce"}},
        headers=server.headers("admin"),
    )
    assert policy.status_code == 200, policy.text
    signed, _ = seed(server, image_id)
    browser.login("approver")

    card = row(browser, "redis:7.2.5")
    expect(card.get_by_text("signed by release-key")).to_be_visible()
    expect(card.locator('[data-architecture="amd64"]')).to_contain_text("30.0 MiB")
    expect(card.locator('[data-architecture="amd64"]')).to_contain_text("+4.2 %")
    expect(card.locator('[data-architecture="arm64"]')).to_contain_text("28.5 MiB")
    expect(card.locator('[data-architecture="arm64"]')).to_contain_text("+12.5 %")
    expect(card.get_by_text("since 7.2.4")).to_be_visible()
    unsigned = row(browser, "redis:7.2.6").locator('[data-evidence="signature"]')
    expect(unsigned).to_have_text("unsigned")
    expect(unsigned).to_have_class("badge tone-danger")  # the image's policy is enforce
    browser.shot("approval-card-list")

    # The filter form: unsigned requests only, then the card of the signed one.
    page.get_by_label("Unsigned or invalid signature").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    assert "unsigned=1" in page.url
    expect(row(browser, "redis:7.2.6")).to_be_visible()
    expect(row(browser, "redis:7.2.5")).to_have_count(0)

    page.goto(f"{server.url}/approvals")
    with page.expect_navigation():
        row(browser, "redis:7.2.5").get_by_role("link", name="redis:7.2.5").click()
    assert page.url == f"{server.url}/approvals/{signed}"
    evidence = page.locator(f'[data-card="{signed}"]')
    expect(evidence.get_by_role("heading", name="Evidence")).to_be_visible()
    expect(evidence.get_by_text("signed by release-key")).to_be_visible()
    expect(evidence.locator('[data-architecture="arm64"]')).to_contain_text("(3.0 MiB new)")
    expect(evidence.locator('[data-architecture="amd64"]')).to_contain_text("(1.0 MiB new)")
    expect(evidence.get_by_text("latest")).to_be_visible()
    browser.shot("approval-card")
