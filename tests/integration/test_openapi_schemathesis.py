"""Schemathesis against the running app, on both databases: the OpenAPI document tells the
truth.

The app is served by uvicorn on 127.0.0.1 in a thread of this process (its own event loop, so
the lifespan and the database connections live where the requests are served). Schemathesis
loads /openapi.json from it and sends, as an admin, schema-valid and schema-invalid requests to
every documented operation, then a stateful run along the links it infers (a created image's
id into the image routes, and so on). Every response must be: not a 5xx, a documented status,
of the documented content type, matching the documented schema; a schema-valid request must be
taken (not a 400/413/422). Bounded and derandomized: the same requests on every run.

Nothing leaves the machine: registry traffic and notification deliveries go to in-process
transports that answer 503. The admin pages (/, /login, … with CSRF forms) and /static are not
in the document (include_in_schema=False), so they are not run here; their tests are
test_web*.py and tests/e2e.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tagwarden.app import create_app
from tagwarden.config import Settings
from tagwarden.db import make_engine
from tagwarden.models import Base
from tests.drawn import real_windows

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # A schema-valid request is taken: Schemathesis 4 counts 2xx/3xx as taken, and 401, 403,
    # 404, 409 and 429 as the domain's answers (no such id, a conflict, the throttle), which the
    # document lists; a 400/413/422 to a request the document allows is a failure. Its default
    # statuses are that list (5xx is left to not_a_server_error).
    positive_data_acceptance,
]
# negative_data_rejection is not in the list: the admin's Authorization header replaces the one
# Schemathesis generates (and mutates, in negative mode), so a "schema-violating" request is
# often a valid one. Loosely typed values being refused is tested in test_openapi_document.py.
# Bounds: ~50 operations x 2 modes x EXAMPLES, then the stateful run; well under 2 minutes
# per database on a 2-core machine.
EXAMPLES = 15
STATEFUL_SCENARIOS = 20
STATEFUL_STEPS = 8


def _offline(_: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="no network in tests")


class LiveServer:
    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    # Bind mounts are refused outside the deployment's roots, a setting the document cannot
    # know: this deployment allows them anywhere, so every volume the document allows is taken.
    settings = settings.model_copy(update={"app_bind_roots": ["/"]})
    app = create_app(settings, registry_transport=httpx.MockTransport(_offline))
    app.state.outbox.http = httpx.AsyncClient(transport=httpx.MockTransport(_offline))
    with LiveServer(app) as url:
        yield url


def _one_mount_per_path(case: Case) -> None:
    """An app mounts each container path once (a 422 otherwise); JSON Schema can say that a
    list's items are unique, not that a part of each is, so a drawn body keeps the first."""
    if case.method != "PUT" or case.path != "/api/v1/apps/{name}":
        return
    config = case.body.get("config") if isinstance(case.body, dict) else None
    volumes = config.get("volumes") if isinstance(config, dict) else None
    if not isinstance(volumes, list):
        return
    seen: set[str] = set()
    kept = []
    for spec in volumes:
        target = spec.split(":")[1] if isinstance(spec, str) and ":" in spec else spec
        if target not in seen:
            seen.add(target)
            kept.append(spec)
    config["volumes"] = kept


# A key the server can load: whether a string is a public key is not something JSON Schema can
# say, so a drawn body gets a real one (a drawn PEM is refused with a 422, tested elsewhere).
_PUBLIC_KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def _a_real_public_key(case: Case) -> None:
    if (
        case.method == "POST"
        and case.path == "/api/v1/signing-keys"
        and isinstance(case.body, dict)
    ):
        case.body["public_key"] = _PUBLIC_KEY


class Guard:
    """The run is an admin's; revoking the admin's own token would turn the rest of it into
    401s and test nothing. A DELETE of that token is sent for another token id instead."""

    def __init__(self, base_url: str, headers: dict[str, str], raw: str) -> None:
        listed = requests.get(f"{base_url}/api/v1/tokens", headers=headers, timeout=10).json()
        self.own = next(t["id"] for t in listed if raw.startswith(t["token_prefix"]))
        self.other = max(t["id"] for t in listed) + 1000

    def __call__(self, case: Case) -> None:
        _one_mount_per_path(case)
        _a_real_public_key(case)
        real_windows(case.body)
        if case.method == "DELETE" and case.path == "/api/v1/tokens/{token_id}":
            try:
                if int(case.path_parameters["token_id"]) == self.own:
                    case.path_parameters["token_id"] = self.other
            except (TypeError, ValueError):
                pass


def _settings(**extra: Any) -> hypothesis.settings:
    return hypothesis.settings(
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def _stateless(schema: Any, headers: dict[str, str], guard: Guard) -> list[str]:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @_settings(max_examples=EXAMPLES)
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Case) -> None:
                guard(case)
                try:
                    case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
                except (Exception, BaseExceptionGroup) as exc:  # reported; the run goes on
                    failures.append(f"{case.operation.label}: {exc}\n{case.as_curl_command()}")

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                # No input to make invalid (GET /healthz): nothing negative to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


# Kept between scenarios: the admin's token, the server's own secrets, and the audit log (which
# refuses deletes).
_KEPT = {"api_tokens", "server_secrets", "audit_log"}


def _reset(database_url: str) -> None:
    """Empty what the API writes, so that every scenario meets the same server. A derandomized
    run replays choices; a bundle filled in one scenario (a device registered: 201) and not in
    the same scenario replayed (the same uuid: 409) is flaky data generation to Hypothesis."""

    async def empty() -> None:
        engine = make_engine(database_url)
        try:
            async with engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    if table.name not in _KEPT:
                        await conn.execute(table.delete())
        finally:
            await engine.dispose()

    asyncio.run(empty())


def _stateful(schema: Any, headers: dict[str, str], guard: Guard, database_url: str) -> None:
    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            _reset(database_url)

        def before_call(self, case: Case) -> None:
            guard(case)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": headers, "timeout": 30}

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Machine.run(
        settings=_settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS)
    )


def test_the_api_conforms_to_its_openapi_document(
    base_url: str, tokens: Any, settings: Settings
) -> None:
    headers = tokens.headers("admin")
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    guard = Guard(base_url, headers, tokens.admin)
    assert len(list(schema.get_all_operations())) >= 50  # the whole API is in the run
    failures = _stateless(schema, headers, guard)
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures[:20])
    _stateful(schema, headers, guard, settings.database_url)
