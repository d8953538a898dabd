"""Size evidence end to end on both databases, against Debian's docker-registry: collected with
the monitor's request, compared with the previous approved tag, gated at approval, planned per
device in a rollout, and exported to Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import Image
from tagwarden.config import Settings
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.notify.models import NotificationChannel, NotificationEvent
from tests.factories import make_settings
from tests.integration.real_registry import RealRegistry, layer_blob

pytestmark = pytest.mark.registry


@pytest.fixture
def settings(database_url: str, real_registry: RealRegistry) -> Settings:
    return make_settings(
        database_url,
        registries={real_registry.host: real_registry.credentials()},
        registry_max_retries=1,
    )


def manifest_sum(manifest: dict[str, Any]) -> int:
    return int(manifest["config"]["size"]) + sum(int(x["size"]) for x in manifest["layers"])


def distinct_sum(manifest: dict[str, Any]) -> int:
    blobs = {manifest["config"]["digest"]: manifest["config"]["size"]}
    blobs.update((x["digest"], x["size"]) for x in manifest["layers"])
    return sum(blobs.values())


class World:
    def __init__(
        self,
        client: httpx.AsyncClient,
        tokens: Any,
        sessionmaker: async_sessionmaker[AsyncSession],
        app: Any,
        image_id: int,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.sessionmaker = sessionmaker
        self.app = app
        self.image_id = image_id

    async def scan(self) -> ApprovalRequest:
        """Check the image now; the newest pending request."""
        response = await self.client.post(
            f"/api/v1/images/{self.image_id}/check", headers=self.tokens.headers("approver")
        )
        assert response.status_code == 200, response.text
        assert response.json()["result"]["error"] is None
        async with self.sessionmaker() as session:
            return (
                await session.scalars(select(ApprovalRequest).order_by(ApprovalRequest.id.desc()))
            ).first()  # type: ignore[return-value]

    async def evidence(self, request_id: int) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/images/approvals/{request_id}", headers=self.tokens.headers("viewer")
        )
        assert response.status_code == 200, response.text
        size: dict[str, Any] = response.json()["evidence"]["size"]
        return size

    async def approve(self, request_id: int) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/images/approvals/{request_id}/approve",
            json={"notes": "looks fine"},
            headers=self.tokens.headers("approver"),
        )

    async def policy(self, **body: Any) -> None:
        response = await self.client.put(
            f"/api/v1/images/{self.image_id}/policy",
            json=body,
            headers=self.tokens.headers("admin"),
        )
        assert response.status_code == 200, response.text


@pytest.fixture
async def world(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    app: Any,
    real_registry: RealRegistry,
    database_url: str,
) -> World:
    # One repository per database run: the registry outlives a single test.
    name = "app-pg" if database_url.startswith("postgresql") else "app-sqlite"
    async with sessionmaker() as session, session.begin():
        session.add(
            NotificationChannel(
                name="hooks", kind="webhook", config={"url": "http://127.0.0.1:9/"},
                events=["tag.size_grew"],
            )
        )  # fmt: skip
        image = Image(
            image_name=name,
            namespace="sized",
            registry_host=real_registry.host,
            approval_status="approved",
            watch_for_updates=True,
        )
        session.add(image)
        await session.flush()
        image_id = image.id
    return World(client, tokens, sessionmaker, app, image_id)


BASE = layer_blob({f"usr/lib/base{i}": f"{i}" * 4000 * i for i in range(1, 4)})
EXTRA = layer_blob({f"opt/extra{i}": f"{i}-extra" * 3000 for i in range(1, 5)})


async def test_sizes_growth_new_bytes_gate_download_and_gauge(
    world: World, real_registry: RealRegistry, database_url: str
) -> None:
    repository = "sized/" + ("app-pg" if database_url.startswith("postgresql") else "app-sqlite")
    old = real_registry.push_multiarch(
        repository, "1.0", created=datetime(2026, 1, 1, tzinfo=UTC), shared_layers=(BASE,)
    )
    first = await world.scan()
    assert first.tag_name == "1.0"
    evidence = await world.evidence(first.id)
    # Sizes equal the sum of each platform manifest's own figures.
    assert evidence["platforms"] == {a: manifest_sum(m) for a, m in old.manifests.items()}
    assert evidence["previous"] is None
    assert evidence["growth_percent"] == {}
    assert evidence["new_bytes"] == {}
    assert (await world.approve(first.id)).status_code == 200

    # 1.1 keeps the base layer and adds a big one: it grows, and only the new blobs count.
    new = real_registry.push_multiarch(
        repository, "1.1", created=datetime(2026, 2, 1, tzinfo=UTC), shared_layers=(BASE, EXTRA)
    )
    await world.policy(size={"mode": "warn", "max_growth_percent": 5})
    rule = await world.client.post(
        f"/api/v1/images/{world.image_id}/rules",
        json={"name": "everything", "kind": "regex", "pattern": ".*"},
        headers=world.tokens.headers("admin"),
    )
    assert rule.status_code == 201, rule.text
    second = await world.scan()
    assert second.tag_name == "1.1"
    # A rule never approves a tag that fails a size check, even in warn mode.
    assert second.status == "pending"
    evidence = await world.evidence(second.id)
    assert evidence["previous"] == {"tag": "1.0", "digest": old.digest}
    for arch, manifest in new.manifests.items():
        before, now = manifest_sum(old.manifests[arch]), manifest_sum(manifest)
        assert evidence["platforms"][arch] == now
        assert evidence["growth_percent"][arch] == round((now - before) * 100 / before, 1)
        # The shared base is not new; the config, EXTRA and the tag's own layer are.
        assert evidence["new_bytes"][arch] == (
            manifest["config"]["size"] + len(EXTRA) + manifest["layers"][-1]["size"]
        )
        assert evidence["growth_percent"][arch] > 20
    async with world.sessionmaker() as session:
        failed = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "approval.rule_failed",
                    AuditEntry.entity_id == str(second.id),
                )
            )
        ).one()
        [grew] = (
            await session.scalars(
                select(NotificationEvent).where(NotificationEvent.event == "tag.size_grew")
            )
        ).all()
    assert failed.after["code"] == "size_exceeded"
    assert grew.payload["image_id"] == world.image_id
    assert grew.payload["tag"] == "1.1"
    assert grew.payload["digest"] == new.digest
    assert set(grew.payload["growth_percent"]) == {"amd64", "arm64"}

    # enforce: growth over max_growth_percent, then size over max_bytes, answer 409.
    await world.policy(size={"mode": "enforce", "max_growth_percent": 5})
    refused = await world.approve(second.id)
    assert refused.status_code == 409
    assert refused.json()["code"] == "size_exceeded"
    assert "max_growth_percent" in refused.json()["detail"]
    biggest = max(evidence["platforms"].values())
    await world.policy(size={"mode": "enforce", "max_bytes": biggest - 1})
    refused = await world.approve(second.id)
    assert refused.status_code == 409
    assert "max_bytes" in refused.json()["detail"]
    await world.policy(size={"mode": "enforce", "max_bytes": biggest, "max_growth_percent": 1000})
    # warn: a person may approve; the failed check is in the decision's audit entry.
    await world.policy(size={"mode": "warn", "max_bytes": biggest - 1})
    approved = await world.approve(second.id)
    assert approved.status_code == 200, approved.text
    async with world.sessionmaker() as session:
        decision = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "approval.approved", AuditEntry.entity_id == str(second.id)
                )
            )
        ).one()
    [check] = decision.after["failed_checks"]
    assert check["check"] == "size"
    assert check["mode"] == "warn"
    assert "max_bytes" in check["failure"]

    # A rollout of 1.1: d1 runs 1.0 (downloads only what 1.0 lacks), d2 runs nothing (all).
    admin = world.tokens.headers("admin")
    for uuid, arch in (("d1", "amd64"), ("d2", "arm64")):
        made = await world.client.post(
            "/api/v1/devices", json={"uuid": uuid, "architecture": arch}, headers=admin
        )
        assert made.status_code == 201, made.text
    async with world.sessionmaker() as session, session.begin():
        d1 = (await session.scalars(select(Device).where(Device.uuid == "d1"))).one()
        image = await session.get(Image, world.image_id)
        assert image is not None
        session.add(
            DeviceApp(
                device_id=d1.id, app_name=image.image_name, image_id=image.id,
                image=image.display_name, tag="1.0", digest=old.digest,
                current_digest=old.platform_digests["amd64"], status="running",
            )
        )  # fmt: skip
    body = {"image_id": world.image_id, "tag": "1.1", "devices": ["d1", "d2"],
            "strategy": "all-at-once"}  # fmt: skip
    dry = await world.client.post(
        "/api/v1/rollouts", json=body | {"dry_run": True}, headers=world.tokens.headers("approver")
    )
    assert dry.status_code == 200, dry.text
    amd64, arm64 = new.manifests["amd64"], new.manifests["arm64"]
    expected = {"d1": evidence["new_bytes"]["amd64"], "d2": distinct_sum(arm64)}
    assert dry.json()["download_bytes"] == expected
    assert dry.json()["download_bytes_total"] == sum(expected.values())
    assert expected["d1"] < manifest_sum(amd64)
    made = await world.client.post(
        "/api/v1/rollouts", json=body, headers=world.tokens.headers("approver")
    )
    assert made.status_code == 201, made.text
    planned = {d["device"]: d["download_bytes"] for d in made.json()["devices"]}
    assert planned == expected
    assert made.json()["download_bytes_total"] == sum(expected.values())

    # Prometheus: the newest approved tag's sizes per architecture.
    metrics = await world.client.get("/metrics", headers=world.tokens.headers("viewer"))
    assert metrics.status_code == 200
    for arch, manifest in new.manifests.items():
        line = (
            f'tagwarden_image_compressed_bytes{{architecture="{arch}",'
            f'image="{image.display_name}"}} {float(manifest_sum(manifest))}'
        )
        assert line in metrics.text


async def test_evidence_on_demand_fills_a_request_made_without_it(
    world: World, real_registry: RealRegistry, database_url: str
) -> None:
    repository = "sized/" + ("app-pg" if database_url.startswith("postgresql") else "app-sqlite")
    pushed = real_registry.push_multiarch(
        repository, "2.0", created=datetime(2026, 3, 1, tzinfo=UTC), shared_layers=(BASE,)
    )
    made = await world.client.post(
        "/api/v1/images/approvals",
        json={
            "image_id": world.image_id,
            "tag_name": "2.0",
            "metadata": {"digest": pushed.digest, "architectures": ["amd64", "arm64"]},
        },
        headers=world.tokens.headers("approver"),
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    assert await world.evidence(request_id) is None
    checked = await world.client.post(
        f"/api/v1/images/approvals/{request_id}/evidence", headers=world.tokens.headers("approver")
    )
    assert checked.status_code == 200, checked.text
    size = checked.json()["size"]
    assert size["platforms"] == {a: manifest_sum(m) for a, m in pushed.manifests.items()}
    assert {a: b["manifest"] for a, b in size["blobs"].items()} == pushed.platform_digests
    assert await world.evidence(request_id) == size
    viewer = await world.client.post(
        f"/api/v1/images/approvals/{request_id}/evidence", headers=world.tokens.headers("viewer")
    )
    assert viewer.status_code == 403
