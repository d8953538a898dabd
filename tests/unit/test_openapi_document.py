"""The OpenAPI document lists the errors each operation can give, with the body that is sent.
Walks every operation, so routes added later are held to it too."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from tagwarden.app import create_app
from tagwarden.approvals.schemas import BulkDecision
from tagwarden.auth.deps import Admin, Approver, Viewer
from tagwarden.openapi import _calls  # the same dependency walk the document uses
from tagwarden.rules.schemas import RuleCreate
from tests.factories import make_settings

ERROR = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('doc')}/doc.db"
    return create_app(make_settings(url)).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in document["paths"].items() for m, op in item.items()]


def _error(op: dict[str, Any], status: int) -> dict[str, Any] | None:
    response = op["responses"].get(str(status))
    return None if response is None else response["content"]["application/json"]["schema"]


def test_the_error_body_is_the_one_sent(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["detail", "code"]
    assert "HTTPValidationError" not in schemas
    for method, path, op in _operations(document):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == ERROR, (
                    method,
                    path,
                    status,
                )


def test_every_authenticated_operation_documents_401_and_429(document: dict[str, Any]) -> None:
    public = {("GET", "/healthz")}
    for method, path, op in _operations(document):
        if (method, path) in public:
            continue
        assert _error(op, 401) == ERROR, (method, path)
        assert _error(op, 429) == ERROR, (method, path)
        assert "Retry-After" in op["responses"]["429"]["headers"]


def test_role_gated_operations_document_403(document: dict[str, Any]) -> None:
    schemes = {
        name for op in _operations(document) for s in op[2].get("security", []) for name in s
    }
    assert schemes == {"HTTPBearer", "DeviceKey"}
    gated = 0
    for method, path, op in _operations(document):
        if op.get("security") != [{"HTTPBearer": []}]:
            continue
        needs_more_than_viewer = op["operationId"] in _role_gated_operation_ids(document)
        assert ("403" in op["responses"]) == needs_more_than_viewer, (method, path)
        gated += needs_more_than_viewer
    assert gated >= 30


def _role_gated_operation_ids(document: dict[str, Any]) -> set[str]:
    """Operation ids of the routes that depend on Approver or Admin, read from the app."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    checks = {a.__metadata__[0].dependency for a in (Approver, Admin)}
    assert Viewer.__metadata__[0].dependency not in checks
    gated = set()
    for ctx in iter_route_contexts(app.routes):
        if getattr(ctx, "dependant", None) is not None and set(_calls(ctx.dependant)) & checks:
            gated.add(ctx.unique_id)
    return gated


def test_operations_with_a_body_document_400_413_and_422(document: dict[str, Any]) -> None:
    bodies = 0
    for method, path, op in _operations(document):
        takes_body = "requestBody" in op or path.startswith("/api/v1/webhooks/")
        if takes_body:
            bodies += 1
            for status in (400, 413, 422):
                assert _error(op, status) == ERROR, (method, path, status)
        if op.get("parameters"):
            assert _error(op, 422) == ERROR, (method, path)
        if "{" in path and not path.startswith("/api/v1/webhooks/"):
            assert _error(op, 404) == ERROR, (method, path)
    assert bodies >= 15


def test_a_boolean_is_not_an_integer(tmp_path: Any) -> None:
    """pydantic's lax mode took `true` for min_age_hours (and for ids in a bulk decision)."""
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    body = app.openapi()["components"]["schemas"]
    assert body["RuleCreate"]["properties"]["min_age_hours"]["type"] == "integer"
    with pytest.raises(ValueError, match="valid integer"):
        RuleCreate.model_validate({"name": "r", "kind": "patch", "min_age_hours": True})
    with pytest.raises(ValueError, match="valid integer"):
        BulkDecision.model_validate({"ids": [False], "action": "reject"})


def test_device_key_operations_document_403(document: dict[str, Any]) -> None:
    # A real key of another device is refused with 403 (devices/service.py), not 401.
    device_ops = [
        (m, p, op)
        for m, p, op in _operations(document)
        if op.get("security") == [{"DeviceKey": []}]
    ]
    assert len(device_ops) == 2
    for method, path, op in device_ops:
        assert _error(op, 403) == ERROR, (method, path)


def test_the_public_document_names_no_configured_registry(tmp_path: Any) -> None:
    # /openapi.json needs no token: the hosts an operator allowed stay out of it.
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path}/doc.db",
        registries={"127.0.0.1:5998": {"url": "http://127.0.0.1:5998"}},
        allowed_registries=["127.0.0.1:5999"],
    )
    document = create_app(settings).openapi()
    registry = document["components"]["schemas"]["ImageCreate"]["properties"]["registry"]
    assert "docker.io" in registry["enum"]
    assert "TAGWARDEN_ALLOWED_REGISTRIES" in registry["description"]
    assert "127.0.0.1:599" not in str(document)
