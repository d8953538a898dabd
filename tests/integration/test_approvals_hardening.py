"""Approvals hardened, on both databases: no approving one's own image, regular
expressions that cannot freeze the server, one tag's failing rule or auto-rollout isolated, and
``auto_process_approved=false`` holding on every path."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import Image, ImagePolicy, ImageTag
from tagwarden.cli.main import app as cli
from tagwarden.config import Settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.rollouts.models import Rollout
from tagwarden.rules import policy
from tagwarden.rules.worker import RulesWorker
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import add_redis, register, seed_request
from tests.integration.test_web import login
from tests.integration.test_webhooks import dockerhub_payload

# The fake registry answers in process (its transport): this URL is never connected to.
HUB = "http://127.0.0.1:9"
SECRET = "hub-secret-0123456789abcdef"
HOUR = 3600


@dataclass
class World:
    fake: FakeRegistry
    clock: FakeClock
    monitor: ImageMonitor
    rules: RulesWorker
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    tokens: Any

    def headers(self, role: str) -> dict[str, str]:
        return dict(self.tokens.headers(role))

    async def add_image(self, name: str, **extra: Any) -> int:
        body = {"image_name": name, "watch_for_updates": True, **extra}
        added = await self.client.post("/api/v1/images", json=body, headers=self.headers("admin"))
        assert added.status_code == 201, added.text
        return int(added.json()["id"])

    async def rule(self, image_id: int, **body: Any) -> None:
        made = await self.client.post(
            f"/api/v1/images/{image_id}/rules", json=body, headers=self.headers("admin")
        )
        assert made.status_code == 201, made.text

    async def requests(self, image_id: int) -> dict[str, ApprovalRequest]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(ApprovalRequest).where(ApprovalRequest.image_id == image_id)
            )
            return {str(r.tag_name): r for r in rows.all()}

    async def activated(self, image_id: int) -> set[str]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(select(ImageTag.tag).where(ImageTag.image_id == image_id))
            return set(rows.all())

    async def audit(self, action: str) -> list[AuditEntry]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(select(AuditEntry).where(AuditEntry.action == action))
            return list(rows.all())

    async def rollouts(self) -> int:
        async with self.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(Rollout)) or 0)


WorldFactory = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[WorldFactory]:
    stack: list[Any] = []

    async def make(*, auto_process: bool = True) -> World:
        clock = FakeClock()
        fake = FakeRegistry(clock=clock)
        configured = settings.model_copy(
            update={
                "dockerhub_api_url": HUB,
                "auto_process_approved": auto_process,
                "webhook_secret": SecretStr(SECRET),
            }
        )
        app = create_app(configured, registry_transport=fake.transport())

        app.state.monitor.clock = clock
        app.state.rules_worker.clock = clock
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw")
        stack.append((lifespan, client))
        return World(
            fake, clock, app.state.monitor, app.state.rules_worker, client, sessionmaker, tokens
        )

    yield make
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


# -- item 2: whoever asked for an image cannot approve it ----------------------------------------


async def _asked_by_approver(world: World) -> tuple[int, int]:
    """An approver (not an admin) asks for an image: an image-level request, by them."""
    asked = await world.client.post(
        "/api/v1/images", json={"image_name": "nginx"}, headers=world.headers("approver")
    )
    assert asked.status_code == 201, asked.text
    image_id = int(asked.json()["id"])
    [request] = (await world.requests(image_id)).values()
    assert (request.tag_name, request.requested_by) == (None, "approver@example.com")
    return image_id, request.id


@pytest.mark.parametrize("required", [1, 2])
async def test_whoever_asked_for_an_image_cannot_approve_it_on_the_api_or_in_bulk(
    make_world: WorldFactory, required: int
) -> None:
    world = await make_world()
    image_id, request_id = await _asked_by_approver(world)
    if required > 1:
        await world.client.put(
            f"/api/v1/images/{image_id}/policy",
            json={"required_approvals": required},
            headers=world.headers("admin"),
        )

    own = await world.client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=world.headers("approver")
    )
    assert own.status_code == 403, own.text
    assert own.json()["code"] == "own_request"
    assert "you asked for nginx to be added" in own.json()["detail"]
    assert "another approver" in own.json()["detail"]

    bulk = await world.client.post(
        "/api/v1/images/approvals/bulk",
        json={"ids": [request_id], "action": "approve"},
        headers=world.headers("approver"),
    )
    assert bulk.status_code == 200, bulk.text
    [result] = bulk.json()["results"]
    assert (result["ok"], result["code"]) == (False, "own_request")
    assert "another approver" in result["detail"]
    async with world.sessionmaker() as session:
        image = await session.get(Image, image_id)
        assert image is not None
        assert image.approval_status == "pending"

    # Somebody else may. With four-eyes, the requester can never be the second of the pair.
    other = await world.client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=world.headers("admin")
    )
    assert other.status_code == 200, other.text
    again = await world.client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=world.headers("approver")
    )
    assert again.status_code == (403 if required > 1 else 409), again.text
    request = (await world.requests(image_id))["None"]
    assert request.status == ("approved" if required == 1 else "pending")


async def test_whoever_asked_for_an_image_may_still_withdraw_it(make_world: WorldFactory) -> None:
    world = await make_world()
    _image_id, request_id = await _asked_by_approver(world)
    withdrawn = await world.client.post(
        f"/api/v1/images/approvals/{request_id}/reject", headers=world.headers("approver")
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "rejected"


async def test_the_approvals_page_refuses_ones_own_image_and_shows_what_is_asked(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    asked = await world.client.post(
        "/api/v1/images",
        json={
            "image_name": "nginx",
            "namespace": "acme",
            "tag_include": r"^1\.\d+$",
            "tag_exclude": "rc",
            "tag_policy": "all",
            "check_interval_minutes": 45,
        },
        headers=world.headers("approver"),
    )
    assert asked.status_code == 201, asked.text
    [request] = (await world.requests(int(asked.json()["id"]))).values()

    csrf = await login(world.client, world.tokens.approver)
    page = await world.client.get("/approvals")
    assert page.status_code == 200
    for shown in ("docker.io", "acme", r"^1\.\d+$", "rc", "all", "45 min", "approver@example.com"):
        assert shown in page.text, shown
    assert "another approver must approve it" in page.text
    assert 'aria-label="Approve acme/nginx"' not in page.text

    refused = await world.client.post(
        f"/approvals/{request.id}/decide", data={"decision": "approve", "csrf_token": csrf}
    )
    assert refused.status_code == 403
    assert "another approver must approve it" in refused.text
    assert (await world.requests(request.image_id))["None"].status == "pending"


def test_whoever_asked_for_an_image_cannot_approve_it_from_the_cli(cli_env: str) -> None:
    async def ask() -> int:
        engine = make_engine(cli_env)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                image = Image(image_name="nginx", approval_status="pending")
                session.add(image)
                await session.flush()
                request = ApprovalRequest(
                    image_id=image.id,
                    image_name="nginx",
                    tag_name=None,
                    status="pending",
                    metadata_={"source": "manual"},
                    requested_by="ops@example.com",
                )
                session.add(request)
                await session.flush()
                return request.id
        finally:
            await engine.dispose()

    request_id = asyncio.run(ask())
    own = CliRunner().invoke(
        cli, ["approvals", "approve", str(request_id), "--as", "ops@example.com"]
    )
    assert own.exit_code == 1, own.output
    assert "another approver must approve it" in own.output
    other = CliRunner().invoke(
        cli, ["approvals", "approve", str(request_id), "--as", "lead@example.com"]
    )
    assert other.exit_code == 0, other.output


# -- item 4: regular expressions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "invalid escape sequence"),
        ("(?=7)", "invalid perl operator"),
        ("(?<!rc)$", "invalid perl operator"),
        ("a{1001}", "invalid repetition size"),
    ],
)
async def test_a_pattern_re2_cannot_run_is_refused_at_input_saying_why(
    make_world: WorldFactory, pattern: str, reason: str
) -> None:
    world = await make_world()
    admin = world.headers("admin")
    created = await world.client.post(
        "/api/v1/images", json={"image_name": "redis", "tag_include": pattern}, headers=admin
    )
    assert created.status_code == 422, created.text
    assert created.json()["code"] == "invalid_input"
    assert reason in created.json()["detail"]
    assert "tag_include" in created.json()["detail"]

    image_id = await world.add_image("redis", watch_for_updates=False)
    patched = await world.client.patch(
        f"/api/v1/images/{image_id}", json={"tag_exclude": pattern}, headers=admin
    )
    assert patched.status_code == 422, patched.text
    assert reason in patched.json()["detail"]

    rule = await world.client.post(
        f"/api/v1/images/{image_id}/rules",
        json={"name": "r", "kind": "regex", "pattern": pattern},
        headers=admin,
    )
    assert rule.status_code == 422, rule.text
    assert reason in rule.json()["detail"]


async def _stored_filter(world: World, image_id: int, **columns: str) -> None:
    """Written past the input checks, as a database from before them may hold it."""
    async with world.sessionmaker() as session, session.begin():
        await session.execute(update(Image).where(Image.id == image_id).values(**columns))


async def test_a_catastrophic_pattern_is_answered_at_once_while_healthz_stays_fast(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    # 30 characters inside the tag grammar that Python's re needs 2^29 steps to refuse.
    slow = "a" * 29 + "b"
    world.fake.add_repository("library/redis", 2, tag_names=lambda i: ["aaa", slow][i])
    # Accepted at input now (RE2 runs it in linear time) …
    image_id = await world.add_image("redis", tag_include="(a+)+$", tag_policy="all")
    # … and the same held in a database, bypassing input validation, behaves the same.
    await _stored_filter(world, image_id, tag_include="(a+)+$")

    # Connections opened first: what is timed is the event loop, not a database handshake; and
    # the test process's heap frozen, so that a full collection of a whole suite's objects
    # (hundreds of ms, seen in full runs) is not mistaken for the server's pause.
    await asyncio.gather(*(world.client.get("/healthz") for _ in range(4)))
    gc.collect()
    gc.freeze()
    check = asyncio.create_task(
        world.client.post(f"/api/v1/images/{image_id}/check", headers=world.headers("approver"))
    )
    started = time.perf_counter()
    health: list[float] = []
    while not check.done():
        before = time.perf_counter()
        answered = await world.client.get("/healthz")
        health.append(time.perf_counter() - before)
        assert answered.status_code == 200
        await asyncio.sleep(0.005)
    checked = await check
    elapsed = time.perf_counter() - started
    gc.unfreeze()

    assert checked.status_code == 200, checked.text
    assert elapsed < 1.0
    assert health
    assert max(health) < 0.1
    # Searched, not anchored at the start, as before: 'aaa' matches, the 'b' tag does not.
    assert checked.json()["result"]["error"] is None
    assert set(await world.requests(image_id)) <= {"aaa"}


async def test_a_stored_pattern_re2_refuses_is_that_images_error_and_the_scan_goes_on(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    world.fake.add_repository("library/redis", 2)
    world.fake.add_repository("library/nginx", 2)
    bad = await world.add_image("redis")
    good = await world.add_image("nginx")
    await _stored_filter(world, bad, tag_exclude=r"(rc)\1")

    checked = await world.client.post(
        f"/api/v1/images/{bad}/check", headers=world.headers("approver")
    )
    assert checked.status_code == 200, checked.text
    assert "tag filter" in checked.json()["result"]["error"]

    summary = await world.monitor.run_once(force=True)
    errors = {r.image_id: r.error for r in summary.results}
    assert errors[good] is None
    assert errors[bad] is not None
    assert "invalid escape sequence" in errors[bad]
    assert len(await world.requests(good)) == 1
    async with world.sessionmaker() as session:
        image = await session.get(Image, bad)
        assert image is not None
        assert "tag filter" in (image.last_error or "")


# -- item 5: one tag's failing auto-rollout or rule -----------------------------------------------


async def test_approving_a_tag_no_rollout_can_take_activates_it_and_records_why_not(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    image = await add_redis(world.client, world.headers("admin"))
    saved = await world.client.put(
        f"/api/v1/images/{image['id']}/policy",
        json={"rollout_template": {"strategy": "all-at-once", "selector": {}}},
        headers=world.headers("admin"),
    )
    assert saved.status_code == 200, saved.text
    await register(world.client, world.headers("admin"), "lab-1", "amd64")
    hostile = "<script>alert(1)</script>"  # a request from before tags were checked
    request_id = await seed_request(world.sessionmaker, image["id"], tag=hostile)

    for _ in range(2):  # not a 500 "every time": the first answer is the decision
        approved = await world.client.post(
            f"/api/v1/images/approvals/{request_id}/approve", headers=world.headers("approver")
        )
        if approved.status_code != 409:
            assert approved.status_code == 200, approved.text
    assert await world.activated(image["id"]) == {hostile}
    assert await world.rollouts() == 0
    [skipped] = await world.audit("rollout.auto_skipped")
    assert skipped.after is not None
    assert (skipped.after["request_id"], skipped.after["code"]) == (request_id, "invalid_rollout")


async def test_a_stored_template_that_no_longer_validates_never_fails_an_approval(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    image = await add_redis(world.client, world.headers("admin"))
    async with world.sessionmaker() as session, session.begin():
        session.add(ImagePolicy(image_id=image["id"], rollout_template={"strategy": "sideways"}))
    request_id = await seed_request(world.sessionmaker, image["id"])

    approved = await world.client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=world.headers("approver")
    )

    assert approved.status_code == 200, approved.text
    assert await world.activated(image["id"]) == {"7.2.5-alpine"}
    [skipped] = await world.audit("rollout.auto_skipped")
    assert skipped.after is not None
    assert "template" in skipped.after["reason"]


async def test_with_a_rule_and_a_template_a_hostile_tag_never_stops_the_good_ones(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    world.fake.add_repository("library/redis", 1, tag_names=lambda i: "7.2.0")
    image_id = await world.add_image("redis", tag_policy="all")
    await world.rule(image_id, name="all", kind="regex", pattern=".*")
    await world.client.put(
        f"/api/v1/images/{image_id}/policy",
        json={"rollout_template": {"strategy": "all-at-once", "selector": {}}},
        headers=world.headers("admin"),
    )
    await world.monitor.run_once(force=True)
    world.clock.advance(60)
    world.fake.push_tag("library/redis", "<b>x</b>")  # dropped at the boundary, or activated
    world.clock.advance(60)
    world.fake.push_tag("library/redis", "7.2.1")

    for _ in range(2):
        checked = await world.client.post(
            f"/api/v1/images/{image_id}/check", headers=world.headers("approver")
        )
        assert checked.status_code == 200, checked.text
    requests = await world.requests(image_id)
    assert requests["7.2.1"].status == "approved"
    assert {"7.2.0", "7.2.1"} <= await world.activated(image_id)


async def test_a_rule_failing_on_one_tag_is_that_tags_error_and_the_scan_records_the_rest(
    make_world: WorldFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world()
    world.fake.add_repository("library/redis", 1, tag_names=lambda i: "7.2.0")
    image_id = await world.add_image("redis", tag_policy="all")
    await world.rule(image_id, name="all", kind="regex", pattern=".*")
    await world.monitor.run_once(force=True)
    world.clock.advance(60)
    world.fake.push_tag("library/redis", "7.2.9")
    world.clock.advance(60)
    world.fake.push_tag("library/redis", "7.2.10")
    matches = policy.matches

    def failing(kind: str, pattern: str | None, tag: str, activated: Any) -> bool:
        if tag == "7.2.9":  # a rule that breaks on this one tag (a bug, a hostile name)
            raise RuntimeError("the rule broke")
        return matches(kind, pattern, tag, activated)

    monkeypatch.setattr(policy, "matches", failing)
    summary = await world.monitor.run_once(force=True)

    [result] = summary.results
    assert result.error is None
    assert sorted(result.requests_created) == ["7.2.10", "7.2.9"]
    requests = await world.requests(image_id)
    assert requests["7.2.10"].status == "approved"
    assert requests["7.2.9"].status == "pending"  # for a person to decide
    assert "7.2.10" in await world.activated(image_id)
    [failed] = await world.audit("approval.rule_failed")
    assert failed.entity_id == str(requests["7.2.9"].id)
    assert failed.after is not None
    assert failed.after["code"] == "rule_failed"
    assert "the rule broke" not in str(failed.after)  # tagwarden's words, the log has the rest


# -- item 10: auto_process_approved=false holds on every path --------------------------------------


async def _rule_and_fleet(world: World, *, min_age_hours: int = 0) -> int:
    world.fake.add_repository("library/redis", 1, tag_names=lambda i: "7.2.0")
    image_id = await world.add_image("redis", tag_policy="all")
    await world.rule(image_id, name="all", kind="regex", pattern=".*", min_age_hours=min_age_hours)
    saved = await world.client.put(
        f"/api/v1/images/{image_id}/policy",
        json={"rollout_template": {"strategy": "all-at-once", "selector": {}}},
        headers=world.headers("admin"),
    )
    assert saved.status_code == 200, saved.text
    await register(world.client, world.headers("admin"), "lab-1", "amd64")
    return image_id


async def _expect(world: World, image_id: int, tag: str, *, activated: bool) -> None:
    request = (await world.requests(image_id))[tag]
    assert request.status == "approved"
    assert request.reviewed_by == "rule:all"
    assert (request.processed_at is not None) is activated
    assert (tag in await world.activated(image_id)) is activated
    assert (await world.rollouts() > 0) is activated


@pytest.mark.parametrize("auto_process", [False, True])
async def test_a_rule_approval_during_a_scan_activates_only_when_auto_process_is_on(
    make_world: WorldFactory, auto_process: bool
) -> None:
    world = await make_world(auto_process=auto_process)
    image_id = await _rule_and_fleet(world)
    await world.monitor.run_once(force=True)
    await _expect(world, image_id, "7.2.0", activated=auto_process)


@pytest.mark.parametrize("auto_process", [False, True])
async def test_a_rule_approval_after_a_webhook_activates_only_when_auto_process_is_on(
    make_world: WorldFactory, auto_process: bool
) -> None:
    world = await make_world(auto_process=auto_process)
    image_id = await _rule_and_fleet(world)
    hooked = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{SECRET}", json=dockerhub_payload("library/redis", "7.2.0")
    )
    assert hooked.status_code == 202, hooked.text
    assert hooked.json()["results"][0]["requests_created"] == ["7.2.0"]
    await _expect(world, image_id, "7.2.0", activated=auto_process)


@pytest.mark.parametrize("auto_process", [False, True])
async def test_a_held_rule_approval_activates_only_when_auto_process_is_on(
    make_world: WorldFactory, auto_process: bool
) -> None:
    world = await make_world(auto_process=auto_process)
    image_id = await _rule_and_fleet(world, min_age_hours=2)
    await world.monitor.run_once(force=True)
    assert (await world.requests(image_id))["7.2.0"].status == "pending"
    world.clock.advance(3 * HOUR)
    assert len(await world.rules.run_once()) == 1
    await _expect(world, image_id, "7.2.0", activated=auto_process)
