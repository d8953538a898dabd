"""Sizes of Docker Hub images, on both databases: the Hub API's ``images[].size``, read from the
listing the monitor makes anyway (no manifest pull), compared with the previous approved tag."""

from __future__ import annotations

from typing import Any

from tests.integration.test_monitor_hub_facts import World, newest, world  # noqa: F401


async def evidence_of(world: World, request_id: int) -> dict[str, Any]:  # noqa: F811
    response = await world.client.get(f"/api/v1/images/approvals/{request_id}", headers=world.admin)
    assert response.status_code == 200, response.text
    size: dict[str, Any] = response.json()["evidence"]["size"]
    return size


async def test_hub_sizes_are_the_listings_and_cost_no_pull(world: World) -> None:  # noqa: F811
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis", tag_policy="all")
    await world.monitor.run_once()
    [first] = await world.requests(image_id)
    before = newest(world, "library/redis")
    size = await evidence_of(world, first.id)
    assert size["platforms"] == {i.spec.key[1]: i.size for i in before.artifact.images}
    assert size["source"] == "hub"
    assert (size["blobs"], size["new_bytes"], size["previous"]) == ({}, {}, None)
    assert world.fake.stats.count("oci_manifest", "GET") == 0
    approved = await world.client.post(
        f"/api/v1/images/approvals/{first.id}/approve", headers=world.admin
    )
    assert approved.status_code == 200, approved.text

    world.clock.advance(60)
    after = world.fake.push_tag("library/redis", "9.9.9")
    world.fake.stats.reset()
    await world.monitor.run_once(force=True)
    second = (await world.requests(image_id))[-1]
    assert second.tag_name == "9.9.9"
    size = await evidence_of(world, second.id)
    now = {i.spec.key[1]: i.size for i in after.artifact.images}
    was = {i.spec.key[1]: i.size for i in before.artifact.images}
    assert size["previous"] == {"tag": before.name, "digest": before.artifact.digest}
    assert size["growth_percent"] == {a: round((now[a] - was[a]) * 100 / was[a], 1) for a in now}
    assert size["new_bytes"] == {}  # the Hub names no layers
    assert world.fake.stats.count("oci_manifest", "GET") == 0
