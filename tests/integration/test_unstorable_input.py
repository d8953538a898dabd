"""Values a database cannot hold are bad input (4xx), never a server error (found in review)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import add_redis

BIG = 2**31  # past PostgreSQL's integer columns
HUGE = 2**63  # past SQLite's 64-bit integers


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/images/{BIG}", None),
        ("GET", f"/api/v1/images/{HUGE}", None),
        ("GET", f"/api/v1/images/approvals/{BIG}", None),
        ("GET", f"/api/v1/images/approvals?image_id={BIG}", None),
        ("POST", "/api/v1/images/approvals/bulk", {"ids": [HUGE], "action": "approve"}),
        ("DELETE", f"/api/v1/tokens/{HUGE}", None),
        ("GET", f"/api/v1/rollouts/{BIG}", None),
        ("GET", "/api/v1/devices/%00", None),
        ("POST", "/api/v1/images", {"image_name": "nginx", "description": "a\u0000b"}),
        ("POST", "/api/v1/images/approvals/1/reject", {"notes": "no\u0000"}),
        (
            "POST",
            "/api/v1/images/approvals",
            {"image_id": 1, "tag_name": "1.0", "metadata": {"architectures": ["amd64"],
                                                           "x": "a\u0000"}},
        ),
        (
            "POST",
            "/api/v1/images/approvals",
            {"image_id": 1, "tag_name": "1.1",
             "metadata": {"architectures": ["amd64"], "last_updated": "0001-01-01T00:00:00+05:00"}},
        ),
        (
            "POST",
            "/api/v1/images/approvals",
            {"image_id": 1, "tag_name": "1.2",
             "metadata": {"architectures": ["amd64"], "platforms": {"amd64": "x" * 500}}},
        ),
    ],
)  # fmt: skip
async def test_unstorable_values_are_never_a_server_error(
    client: httpx.AsyncClient, tokens: Any, method: str, path: str, body: Any
) -> None:
    await add_redis(client, tokens.headers("admin"))
    response = await client.request(method, path, json=body, headers=tokens.headers("admin"))
    # SQLite can hold some of these (a NUL in text, a 2**31 id): there a 2xx is right too.
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()) == {"detail", "code"}


async def test_a_non_finite_number_in_metadata_is_refused(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    await add_redis(client, tokens.headers("admin"))
    response = await client.post(
        "/api/v1/images/approvals",
        content=b'{"image_id": 1, "tag_name": "1.3", "metadata": '
        b'{"architectures": ["amd64"], "n": NaN}}',
        headers={**tokens.headers("admin"), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "metadata.n holds a non-finite number"
