"""The OpenAPI document, with every error response a route can give.

FastAPI documents a route's success and a 422 of its own shape (``HTTPValidationError``) that
tagwarden never sends. Here the error statuses are derived from what each route depends on, so
a new route is documented truthfully without listing statuses by hand:

- an API token (``deps.Viewer``/``Approver``/``Admin``) or a device key: 401, and 429 (the
  failed-credential throttle answers 429 with Retry-After before the credential is checked);
- a role above the lowest one, or a device key (used on another device's path): 403;
- a path parameter: 404 (the id may name nothing);
- any parameter or a body: 422; a body: 400 (unreadable) and 413 (past TAGWARDEN_MAX_BODY_BYTES).

Routes add what only they can answer (a 409, a 404 for an id in the body) with
``errors.error_responses``; routers whose credential is not a dependency (webhooks) declare
theirs the same way. Every error is documented with the one body tagwarden sends, ErrorBody.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts

from tagwarden.auth.deps import Admin, Approver, Viewer, _principal
from tagwarden.auth.models import ROLES
from tagwarden.devices.auth import _device_key
from tagwarden.errors import ERROR_DESCRIPTIONS, ErrorBody
from tagwarden.registry import allowlist

ERROR_REF = "#/components/schemas/ErrorBody"
_METHODS = ("get", "put", "post", "patch", "delete")


def _role_checks() -> dict[Callable[..., Any], str]:
    """The dependency behind each role alias (``Annotated[Principal, Depends(require(r))]``)."""
    aliases = {"viewer": Viewer, "approver": Approver, "admin": Admin}
    return {typing.get_args(alias)[1].dependency: role for role, alias in aliases.items()}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def derived_statuses(route: Any, role_checks: dict[Callable[..., Any], str]) -> set[int]:
    """The error statuses a route can answer, from its dependencies, parameters and body."""
    dependant: Dependant = route.dependant
    calls = set(_calls(dependant))
    statuses: set[int] = set()
    if _principal in calls or _device_key in calls:
        statuses |= {401, 429}
    roles = [role_checks[c] for c in calls if c in role_checks]
    if any(ROLES.index(r) > 0 for r in roles) or _device_key in calls:
        # A device key is refused with 403 on another device's path (it is a real key).
        statuses.add(403)
    params = dependant.path_params + dependant.query_params + dependant.header_params
    for sub in dependant.dependencies:  # parameters declared by a dependency (paging)
        params += sub.path_params + sub.query_params + sub.header_params
    if dependant.path_params:
        statuses.add(404)
    if params or route.body_field is not None:
        statuses.add(422)
    if route.body_field is not None:
        statuses |= {400, 413}
    return statuses


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
        }
    if status == 429:
        response["headers"] = {
            "Retry-After": {
                "schema": {"type": "integer", "minimum": 1},
                "description": "seconds until a credential is checked again",
            }
        }
    return response


def document_errors(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Add the derived error responses to ``schema`` (FastAPI's document of ``app``)."""
    role_checks = _role_checks()
    for ctx in iter_route_contexts(app.routes):
        if getattr(ctx, "dependant", None) is None or not ctx.include_in_schema:
            continue
        item = schema["paths"].get(ctx.path_format, {})
        for method in ctx.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            declared = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(derived_statuses(ctx, role_checks) | declared):
                # FastAPI's own 422 (HTTPValidationError) and the routes' ErrorBody entries
                # are replaced alike, so each error has one description and one schema.
                responses[str(status)] = _error_response(status)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema()
    # Nothing refers to FastAPI's validation error shapes any more; tagwarden never sends them.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def document_allowed_registries(schema: dict[str, Any], hosts: Iterable[str]) -> None:
    """An image's ``registry`` is an allowed host: the document lists the
    built-in ones, so a body it allows is one the allow-list takes.

    Only those: /openapi.json is public, and the hosts an operator configured (internal
    registries) are nobody else's business. The description says that more may be allowed; the
    server also takes case and ``:443`` variants, and the document names each host once."""
    components = schema.get("components", {}).get("schemas", {})
    registry = components.get("ImageCreate", {}).get("properties", {}).get("registry")
    if registry is not None:
        registry["enum"] = sorted(hosts)
        registry["description"] = (
            "the registry host: one of these, or a host this deployment allows "
            "(TAGWARDEN_REGISTRIES, TAGWARDEN_ALLOWED_REGISTRIES); any other is refused with 422"
        )


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and /openapi.json) serve the document with its errors."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document_allowed_registries(schema, allowlist.BUILT_IN_HOSTS)
            app.openapi_schema = document_errors(app, schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
