"""docs/contract.md, row by row, against the code on both databases: the seeds' tables and
columns, endpoint paths, JSON fields and log lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tagwarden.models import Base
from tests.factories import DIGEST, add_redis
from tests.unit.test_readme import app_routes, app_without_lifespan

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = (ROOT / "docs" / "contract.md").read_text()
CODE = re.compile(r"`([^`]+)`")


def section(title: str) -> list[list[str]]:
    """The body rows of the first table under ``## title``, as lists of cells."""
    body = CONTRACT.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[2:]]


def fields_of(where: str) -> list[str]:
    [row] = [r for r in section("JSON fields") if r[0] == where]
    return CODE.findall(row[1])


def has_field(value: Any, dotted: str) -> bool:
    """``image.id``: a key below a key."""
    head, _, rest = dotted.partition(".")
    if not isinstance(value, dict) or head not in value:
        return False
    return not rest or has_field(value[head], rest)


def schema_properties(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The property names a JSON body may carry, through $ref and anyOf."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return schema_properties(document, document["components"]["schemas"][name])
    out = set(schema.get("properties", {}))
    for option in schema.get("anyOf", []):
        out |= schema_properties(document, option)
    return out


def test_every_table_and_column_of_the_seeds_is_in_the_models() -> None:
    rows = section("Tables and columns")
    assert len(rows) == 4
    for table, columns in rows:
        name = CODE.findall(table)[0]
        assert name in Base.metadata.tables, name
        have = set(Base.metadata.tables[name].c.keys())
        missing = set(CODE.findall(columns)) - have
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_every_endpoint_path_of_the_seeds_is_a_route() -> None:
    rows = section("Endpoint paths")
    assert len(rows) == 16
    served = app_routes(app_without_lifespan())
    for method, path in rows:
        assert (method, CODE.findall(path)[0]) in served, (method, path)


def test_the_request_and_response_bodies_carry_the_seeds_fields() -> None:
    document = app_without_lifespan().openapi()
    for where, status in (
        ("POST /api/v1/images/{image_id}/check", "200"),
        ("PUT /api/v1/images/{image_id}/monitoring", "200"),
        ("POST /api/v1/images/monitor/trigger", "200"),
    ):
        method, path = where.split(" ")
        operation = document["paths"][path][method.lower()]
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        tops = {f.split(".", 1)[0] for f in fields_of(f"`{where}` response")}
        assert tops <= schema_properties(document, schema), where
    for where in (
        "PUT /api/v1/images/{image_id}/monitoring",
        "POST /api/v1/images/approvals/{request_id}/approve",
        "POST /api/v1/rollouts",
    ):
        method, path = where.split(" ")
        operation = document["paths"][path][method.lower()]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(fields_of(f"`{where}` request")) <= schema_properties(document, schema), where


async def test_responses_and_stored_metadata_carry_the_seeds_fields(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    admin = tokens.headers("admin")
    status = await client.get("/api/v1/images/monitor/status", headers=admin)
    assert status.status_code == 200
    for field in fields_of("`GET /api/v1/images/monitor/status` response"):
        assert has_field(status.json(), field), field

    image = await add_redis(client, admin)
    monitoring = await client.put(
        f"/api/v1/images/{image['id']}/monitoring", json={"watch_for_updates": True}, headers=admin
    )
    assert monitoring.status_code == 200, monitoring.text
    for field in fields_of("`PUT /api/v1/images/{image_id}/monitoring` response"):
        assert has_field(monitoring.json(), field), field

    created = await client.post(
        "/api/v1/images/approvals",
        json={
            "image_id": image["id"],
            "tag_name": "7.2.5-alpine",
            "metadata": {
                "digest": DIGEST,
                "last_updated": "2025-10-17T10:30:00Z",
                "architectures": ["amd64", "arm64"],
            },
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    request = created.json()
    for field in fields_of("an approval request's `metadata`"):
        assert field in request["metadata"], field

    approved = await client.post(
        f"/api/v1/images/approvals/{request['id']}/approve", json={"notes": "ok"}, headers=admin
    )
    assert approved.status_code == 200, approved.text
    processed = await client.post(
        f"/api/v1/images/approvals/{request['id']}/process", headers=admin
    )
    assert processed.status_code == 200, processed.text
    tags = (await client.get(f"/api/v1/images/{image['id']}/tags", headers=admin)).json()
    assert sorted(t["architecture"] for t in tags) == ["amd64", "arm64"]
    for tag in tags:
        assert set(fields_of("an image tag's `metadata`")) == set(tag["metadata"])


def test_the_device_state_carries_the_seeds_fields() -> None:
    """The wire format both the server's and the agent's tests validate against."""
    schema = json.loads((ROOT / "contracts" / "device-state.schema.json").read_text())
    fields = fields_of("`GET /api/v1/device/{uuid}/state` response")
    assert fields == ["apps", "apps.*.image"]
    assert "apps" in schema["required"]
    app = schema["$defs"]["app"]
    assert "image" in app["required"]
    assert "image" in app["properties"]


def test_every_log_line_of_the_seeds_is_emitted_where_the_contract_says() -> None:
    rows = section("Log lines")
    assert len(rows) == 13
    for line, where in rows:
        text = CODE.findall(line)[0] if line.startswith("`") else line
        source = (ROOT / CODE.findall(where)[0]).read_text()
        assert text in source, (text, where)
