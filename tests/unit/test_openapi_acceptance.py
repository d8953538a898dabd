"""A request the OpenAPI document allows is one the server takes.

Bodies are drawn by Schemathesis from the document, as the integration run draws them, and
handed to the request models and the service's own checks, without a server: a channel's
config for its kind, a rollout's "image or image_id" and "devices or selector". And every
integer a request carries is bounded to what the database holds, every route included.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from pydantic import TypeAdapter

from tagwarden.app import create_app
from tagwarden.approvals import metadata
from tagwarden.approvals.schemas import ApprovalRequestCreate
from tagwarden.inputs import INT32_MAX
from tagwarden.notify import service as notify
from tagwarden.notify.schemas import ChannelCreate
from tagwarden.rollouts.schemas import RolloutCreate
from tagwarden.rules.schemas import PolicyUpdate
from tests.drawn import real_windows
from tests.factories import make_settings

EXAMPLES = 200


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('doc')}/doc.db"
    return create_app(make_settings(url)).openapi()


def _bodies(document: dict[str, Any], method: str, path: str) -> list[Any]:
    operation = schemathesis.openapi.from_dict(document)[path][method]
    drawn: list[Any] = []

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy())
    def draw(case: Any) -> None:
        drawn.append(case.body)

    draw()
    return drawn


def test_every_drawn_channel_body_is_one_the_service_takes(document: dict[str, Any]) -> None:
    kinds = set()
    for body in _bodies(document, "POST", "/api/v1/notifications/channels"):
        channel = TypeAdapter(ChannelCreate).validate_python(body)
        notify.check_config(channel.kind, channel.config_dict())
        notify.check_events(channel.events)
        assert channel.name.strip()
        kinds.add(channel.kind)
    assert kinds == {"slack", "discord", "webhook", "email"}  # every kind was drawn


def test_every_drawn_rollout_body_names_one_image_and_one_target(
    document: dict[str, Any],
) -> None:
    for body in _bodies(document, "POST", "/api/v1/rollouts"):
        real_windows(body)
        RolloutCreate.model_validate(body)  # the model's cross-field rules hold


def test_every_drawn_approval_request_carries_metadata_activation_reads(
    document: dict[str, Any],
) -> None:
    for body in _bodies(document, "POST", "/api/v1/images/approvals"):
        request = ApprovalRequestCreate.model_validate(body)
        metadata.validate(
            request.metadata.model_dump(mode="json", exclude_none=True), require_architectures=True
        )


def test_every_drawn_policy_body_is_taken(document: dict[str, Any]) -> None:
    for body in _bodies(document, "PUT", "/api/v1/images/{image_id}/policy"):
        real_windows(body)  # a rollout template's options
        PolicyUpdate.model_validate(body)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _integers(document: dict[str, Any], schema: Any, where: str, seen: set[str]) -> list[Any]:
    """(where, schema) of every integer a request schema holds, through refs and combinators."""
    if isinstance(schema, list):
        return [i for s in schema for i in _integers(document, s, where, seen)]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        # Free JSON (extra metadata entries) is stored as JSONB, whose numbers have no bound.
        if schema["$ref"] in seen or schema["$ref"].endswith("/Json"):
            return []
        return _integers(document, _resolve(document, schema), where, seen | {schema["$ref"]})
    # Numbers kept inside a JSON column (a byte limit in a policy) are bounded by JSON, not 32 bits.
    stored_in_json = (
        schema.get("x-stored-in-json") is True and schema.get("maximum", 2**54) <= 2**53
    )
    integer = schema.get("type") == "integer" and "const" not in schema and not stored_in_json
    found = [(where, schema)] if integer else []
    for key in ("anyOf", "oneOf", "allOf", "items", "additionalProperties"):
        found += _integers(document, schema.get(key), where, seen)
    for name, sub in (schema.get("properties") or {}).items():
        found += _integers(document, sub, f"{where}.{name}", seen)
    return found


def test_every_integer_a_request_carries_fits_the_database(document: dict[str, Any]) -> None:
    # PostgreSQL's INTEGER columns hold 32 bits; past that an id names nothing and a count
    # cannot be stored, so the document says where integers end (a 422 beyond, never a surprise).
    found = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            label = f"{method.upper()} {path}"
            for param in op.get("parameters", []):
                found += _integers(document, param["schema"], f"{label} {param['name']}", set())
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                found += _integers(document, body["schema"], f"{label} body", set())
    assert len(found) > 20
    unbounded = [
        w
        for w, s in found
        if not (s.get("minimum", -1) >= 0 and s.get("maximum", INT32_MAX + 1) <= INT32_MAX)
    ]
    assert not unbounded, unbounded
