"""The approval card on the admin pages: evidence, policy colours and evidence filters, on both
databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.web import views_approvals
from tests.card_data import GREW, SIGNED, MiB, add_request, digest_of, signature, size
from tests.factories import add_redis
from tests.integration.test_web import login


def row_of(html: str, request_id: int) -> str:
    found = re.search(rf'<tr id="request-{request_id}".*?</tr>', html, re.S)
    assert found, f"request {request_id} is not on the page"
    return found.group(0)


def listed(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<tr id="request-(\d+)"', html)}


async def add_image(client: httpx.AsyncClient, tokens: Any, name: str) -> int:
    response = await client.post(
        "/api/v1/images", json={"image_name": name}, headers=tokens.headers("admin")
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def set_policy(client: httpx.AsyncClient, tokens: Any, image_id: int, **body: Any) -> None:
    response = await client.put(
        f"/api/v1/images/{image_id}/policy", json=body, headers=tokens.headers("admin")
    )
    assert response.status_code == 200, response.text


async def test_the_card_shows_signer_sizes_growth_previous_tag_and_repush(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    signed = await add_request(
        sessionmaker,
        image["id"],
        "7.2.5",
        digest_of(1),
        metadata={
            "also_tagged": ["latest", "7.2"],
            "reason": "digest_changed",
            "old_digest": digest_of(99),
            "changed_platforms": ["arm64"],
        },
        signed=SIGNED,
        sized=GREW,
    )
    bare = await add_request(sessionmaker, image["id"], "7.2.6", digest_of(2))
    await login(client, tokens.viewer)
    html = (await client.get("/approvals")).text
    card = row_of(html, signed)
    assert "signed by release-key" in card
    assert 'class="badge tone-ok"' in card  # a verified signature with the policy off
    amd64 = re.search(r'data-architecture="amd64".*?</li>', card, re.S)
    arm64 = re.search(r'data-architecture="arm64".*?</li>', card, re.S)
    assert amd64
    assert arm64
    assert "30.0 MiB" in amd64.group(0)
    assert "+4.2 %" in amd64.group(0)
    assert "(1.0 MiB new)" in amd64.group(0)
    assert "28.5 MiB" in arm64.group(0)
    assert "+12.5 %" in arm64.group(0)
    assert "(3.0 MiB new)" in arm64.group(0)
    assert "since 7.2.4" in card
    also = re.search(r'data-evidence="also-tagged".*?</div>', card, re.S)
    assert also
    assert "latest" in also.group(0)
    assert "7.2" in also.group(0)
    repush = re.search(r'data-evidence="repush".*?</div>', card, re.S)
    assert repush
    assert "re-pushed" in repush.group(0)
    assert ">arm64<" in repush.group(0)
    assert ">amd64<" not in repush.group(0)
    assert f'href="/approvals/{signed}"' in card
    other = row_of(html, bare)
    assert 'data-evidence="none"' in other
    assert "not collected yet" in other
    assert "signed by" not in other
    assert "re-pushed" not in other


@pytest.mark.parametrize(
    ("mode", "tone"), [("enforce", "danger"), ("warn", "warning"), ("off", "muted")]
)
async def test_unsigned_is_shown_in_the_colour_of_the_images_signature_policy(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    mode: str,
    tone: str,
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await set_policy(client, tokens, image["id"], signature={"mode": mode})
    unsigned = await add_request(
        sessionmaker, image["id"], "7.2.5", digest_of(1), signed=signature("unsigned")
    )
    invalid = await add_request(
        sessionmaker,
        image["id"],
        "7.2.6",
        digest_of(2),
        signed=signature("invalid", reason="digest_mismatch", signed_digest=digest_of(7)),
    )
    await login(client, tokens.viewer)
    html = (await client.get("/approvals")).text
    assert f'<span class="badge tone-{tone}" data-evidence="signature">unsigned</span>' in (
        row_of(html, unsigned)
    )
    assert (
        f'<span class="badge tone-{tone}" data-evidence="signature">invalid: digest_mismatch'
        in row_of(html, invalid)
    )


async def test_a_verified_signature_short_of_the_policys_signers_says_why(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await set_policy(client, tokens, image["id"], signature={"mode": "warn", "min_signers": 2})
    request_id = await add_request(sessionmaker, image["id"], "7.2.5", digest_of(1), signed=SIGNED)
    await login(client, tokens.viewer)
    card = row_of((await client.get("/approvals")).text, request_id)
    assert 'class="badge tone-warning" data-evidence="signature">signed by release-key' in card
    assert "signed by 1 of the 2 required signer(s)" in card
    assert "size not collected yet" in card


async def test_a_size_over_an_enforced_limit_is_marked_as_danger(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await set_policy(
        client, tokens, image["id"], size={"mode": "enforce", "max_growth_percent": 10}
    )
    request_id = await add_request(sessionmaker, image["id"], "7.2.5", digest_of(1), sized=GREW)
    await login(client, tokens.viewer)
    card = row_of((await client.get("/approvals")).text, request_id)
    assert re.search(r'<li class="tone-text-danger" data-architecture="arm64"', card)
    assert re.search(r'<li data-architecture="amd64"', card)  # 4.2 % is within 10 %
    assert "arm64: grew 12.5 %, more than max_growth_percent 10" in card


async def test_filters_unsigned_and_grew_more_than_combine_with_status_image_and_pages(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis = (await add_redis(client, tokens.headers("admin")))["id"]
    nginx = await add_image(client, tokens, "nginx")
    small = size({"amd64": 10 * MiB, "arm64": 10 * MiB}, growth={"amd64": 1.0, "arm64": -3.0})
    big = size({"amd64": 12 * MiB, "arm64": 9 * MiB}, growth={"amd64": 0.5, "arm64": 25.0})
    ids = {
        "verified_big": await add_request(
            sessionmaker, redis, "1", digest_of(1), signed=SIGNED, sized=big
        ),
        "unsigned_small": await add_request(
            sessionmaker, redis, "2", digest_of(2), signed=signature("unsigned"), sized=small
        ),
        "invalid_big": await add_request(
            sessionmaker,
            redis,
            "3",
            digest_of(3),
            signed=signature("invalid", reason="bad_signature"),
            sized=big,
        ),
        "error": await add_request(
            sessionmaker, redis, "4", digest_of(4), signed=signature("error", reason="timeout")
        ),
        "not_collected": await add_request(sessionmaker, redis, "5", digest_of(5)),
        "unsigned_big_nginx": await add_request(
            sessionmaker, nginx, "6", digest_of(6), signed=signature("unsigned"), sized=big
        ),
        "unsigned_approved": await add_request(
            sessionmaker,
            redis,
            "7",
            digest_of(7),
            status="approved",
            signed=signature("unsigned"),
            sized=big,
        ),
    }
    await login(client, tokens.viewer)

    async def shown(query: str) -> set[str]:
        response = await client.get(f"/approvals?{query}")
        assert response.status_code == 200, response.text
        names = {v: k for k, v in ids.items()}
        return {names[i] for i in listed(response.text)}

    assert await shown("unsigned=1") == {"unsigned_small", "invalid_big", "unsigned_big_nginx"}
    assert await shown("grew=20") == {"verified_big", "invalid_big", "unsigned_big_nginx"}
    assert await shown("grew=25") == set()  # more than N, not N itself
    assert await shown("grew=0.9") == {
        "verified_big",
        "unsigned_small",
        "invalid_big",
        "unsigned_big_nginx",
    }
    assert await shown("unsigned=1&grew=20") == {"invalid_big", "unsigned_big_nginx"}
    assert await shown(f"unsigned=1&grew=20&image_id={redis}") == {"invalid_big"}
    assert await shown("status=all&unsigned=1&grew=20") == {
        "invalid_big",
        "unsigned_big_nginx",
        "unsigned_approved",
    }
    assert await shown("status=approved&unsigned=true") == {"unsigned_approved"}
    # An empty box (what the filter form sends when nothing is typed) is no filter.
    assert len(await shown("grew=&status=pending")) == 6
    page = (await client.get("/approvals?unsigned=1")).text
    assert 'id="f-unsigned" name="unsigned" type="checkbox" value="1" checked' in page
    assert "3 pending requests" in page
    form = await client.get("/approvals?image_id=&status=pending&unsigned=1&grew=")
    assert form.status_code == 200, form.text

    # Pages keep the filters: one request a page, each page of the filtered list.
    monkeypatch.setattr(views_approvals, "PAGE_SIZE", 1)
    first = (await client.get("/approvals?unsigned=1&grew=20")).text
    assert listed(first) == {ids["invalid_big"]}
    older = re.search(r'<a href="([^"]+)">Older', first)
    assert older, "no link to the next page"
    link = older.group(1).replace("&amp;", "&")
    assert "unsigned=1" in link
    assert "grew=20" in link
    assert "offset=1" in link
    second = (await client.get(link)).text
    assert listed(second) == {ids["unsigned_big_nginx"]}
    assert "2 pending requests" in second


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e309", "2000000"])
async def test_a_bad_growth_filter_is_a_422_page_that_says_why(
    client: httpx.AsyncClient, tokens: Any, value: str
) -> None:
    await login(client, tokens.viewer)
    response = await client.get("/approvals", params={"grew": value})
    assert response.status_code == 422
    assert "grew:" in response.text
    assert "is not a percentage" in response.text
    assert "text/html" in response.headers["content-type"]


async def test_the_all_images_option_is_no_filter_and_a_bad_image_id_is_a_422_page(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await add_request(sessionmaker, image["id"], "7.2.5", digest_of(1))
    await login(client, tokens.viewer)
    for path in ("/approvals?image_id=&status=pending&grew=", "/approvals/history?image_id="):
        response = await client.get(path)
        assert response.status_code == 200, path
    assert request_id in listed((await client.get("/approvals?image_id=")).text)
    for bad in ("abc", "0", "-1", "99999999999"):
        response = await client.get("/approvals", params={"image_id": bad})
        assert response.status_code == 422, bad
        assert "is not an image id" in response.text


@pytest.fixture
def evidence_queries() -> Iterator[list[str]]:
    """The SQL statements that read digest_evidence, as the database receives them."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if re.search(r"FROM digest_evidence", statement):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


async def test_the_page_reads_its_evidence_in_one_query_whatever_its_length(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    evidence_queries: list[str],
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    for n in range(1, 9):
        await add_request(
            sessionmaker, image["id"], f"1.{n}", digest_of(n), signed=SIGNED, sized=GREW
        )
    await login(client, tokens.viewer)
    evidence_queries.clear()
    html = (await client.get("/approvals")).text
    assert html.count("signed by release-key") == 8
    assert len(evidence_queries) == 1, evidence_queries


async def test_the_request_page_shows_the_whole_card_and_the_decision(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await add_request(
        sessionmaker,
        image["id"],
        "7.2.5",
        digest_of(1),
        metadata={
            "also_tagged": ["latest"],
            "reason": "digest_changed",
            "old_digest": digest_of(99),
            "changed_platforms": ["amd64", "arm64"],
            "pushed_by": "redis-bot",
            "full_size": 61 * MiB,
        },
        signed=SIGNED,
        sized=GREW,
    )
    bare = await add_request(sessionmaker, image["id"], "7.2.6", digest_of(2))
    await login(client, tokens.approver)
    response = await client.get(f"/approvals/{request_id}")
    assert response.status_code == 200
    html = response.text
    assert "<h1>redis:7.2.5</h1>" in html
    section = re.search(r'<section class="card evidence".*?</section>', html, re.S)
    assert section
    card = section.group(0)
    assert "signed by release-key" in card
    assert "<dt>Signers</dt><dd>release-key</dd>" in card
    assert "<dt>Signed at</dt><dd>index</dd>" in card
    assert f'title="{digest_of(1)}"' in card  # the signed digest
    assert "30.0 MiB" in card
    assert "+12.5 %" in card
    assert "(3.0 MiB new)" in card
    assert "<dt>Previous approved</dt><dd>7.2.4" in card
    assert "re-pushed" in card
    assert f'title="{digest_of(99)}"' in card
    assert "redis-bot" in html
    assert "61.0 MiB" in html
    assert f'action="/approvals/{request_id}/decide"' in html

    other = (await client.get(f"/approvals/{bare}")).text
    assert 'signature">not collected yet' in other
    assert "size not collected yet" in other

    missing = await client.get("/approvals/999999")
    assert missing.status_code == 404
    assert "not found" in missing.text


async def test_a_viewer_sees_the_card_without_the_decision_form(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await add_request(
        sessionmaker, image["id"], "7.2.5", digest_of(1), signed=SIGNED, sized=GREW
    )
    await login(client, tokens.viewer)
    html = (await client.get(f"/approvals/{request_id}")).text
    assert "signed by release-key" in html
    assert "/decide" not in html
