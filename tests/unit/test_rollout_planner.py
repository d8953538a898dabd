"""The rollout planner and health gates as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwarden.rollouts import gates, planner

NOW = datetime(2025, 10, 17, 10, 30, tzinfo=UTC)
VARIANTS = {
    "amd64": planner.Variant("amd64", "sha256:index"),
    "arm64": planner.Variant("arm64", "sha256:index", "sha256:arm64"),
}


def device(uuid: str, arch: str = "amd64", **kwargs: object) -> planner.Candidate:
    return planner.Candidate(uuid=uuid, architecture=arch, registered_at=NOW, **kwargs)  # type: ignore[arg-type]


def plan(strategy: str, options: planner.Options, devices: list[planner.Candidate]) -> planner.Plan:
    return planner.plan(strategy, options, devices, VARIANTS, now=NOW, poll_interval_seconds=60)


def test_canary_then_the_rest_at_once_or_in_batches() -> None:
    fleet = [device(f"d{i}") for i in range(10)]
    assert [len(b) for b in plan("canary", planner.Options(), fleet).batches] == [1, 9]
    pct = planner.Options(canary_percent=25, batch_size=4)
    assert [len(b) for b in plan("canary", pct, fleet).batches] == [3, 4, 3]
    assert [len(b) for b in plan("batched", planner.Options(batch_size=4), fleet).batches] == [
        4,
        4,
        2,
    ]
    assert plan("all-at-once", planner.Options(), fleet).batches == [[d.uuid for d in fleet]]


def test_skip_reasons() -> None:
    fleet = [
        device("pi", "arm/v7"),
        device("done", reported_digest="sha256:arm64", reported_status="running", arch="arm64"),
        device("pinned", target_digest="sha256:index"),
        device("gone", last_seen_at=NOW - timedelta(seconds=181)),
        device("recent", last_seen_at=NOW - timedelta(seconds=179)),
        device("x86", "x86_64"),
    ]
    result = plan("all-at-once", planner.Options(), fleet)
    assert {s.uuid: s.reason for s in result.skipped} == {
        "pi": "architecture_not_provided",
        "done": "already_on_target",
        "pinned": "already_on_target",
        "gone": "offline",
    }
    assert result.batches == [["recent", "x86"]]


@pytest.mark.parametrize(
    ("max_failures", "targeted", "allowed"), [(0, 10, 0), (2, 10, 2), ("10%", 25, 2), ("0%", 5, 0)]
)
def test_failure_allowance(max_failures: int | str, targeted: int, allowed: int) -> None:
    assert planner.failure_allowance(max_failures, targeted) == allowed


@given(
    uuids=st.lists(st.text("abcdef0123", min_size=1, max_size=6), max_size=60),
    archs=st.lists(st.sampled_from(["amd64", "arm64", "arm/v7"]), min_size=60, max_size=60),
    strategy=st.sampled_from(planner.STRATEGIES),
    canary=st.one_of(st.none(), st.integers(1, 70)),
    batch=st.one_of(st.none(), st.integers(1, 70)),
)
def test_every_device_is_planned_once_in_order_or_skipped(
    uuids: list[str],
    archs: list[str],
    strategy: str,
    canary: int | None,
    batch: int | None,
) -> None:
    options = planner.Options(
        canary_count=canary if strategy == "canary" else None,
        batch_size=None if strategy == "all-at-once" else batch,
    )
    fleet = [device(u, archs[i]) for i, u in enumerate(uuids)]
    result = plan(strategy, options, fleet)
    unique = list(dict.fromkeys(uuids))
    planned = result.targeted + [s.uuid for s in result.skipped]
    assert sorted(planned) == sorted(unique)
    assert result.targeted == [u for u in unique if u in set(result.targeted)]  # order kept
    assert all(batch for batch in result.batches)  # no empty batch
    if strategy == "canary" and result.targeted:
        assert len(result.batches[0]) == min(canary or 1, len(result.targeted))
    if batch and strategy != "all-at-once":
        assert all(len(b) <= batch for b in result.batches[1 if strategy == "canary" else 0 :])


def _assess(report: gates.Report, *, since: datetime | None = None, now: datetime = NOW) -> str:
    return gates.assess(
        state="scheduled",
        report=report,
        accepted_digests=frozenset({"sha256:index"}),
        scheduled_at=NOW - timedelta(seconds=10),
        deadline_at=NOW + timedelta(seconds=100),
        healthy_since=since,
        bake_seconds=30,
        now=now,
    ).state


def test_gates_success_means_healthy_running_target_digest_held_through_bake() -> None:
    good = gates.Report("running", "healthy", "sha256:index", None, NOW)
    assert _assess(good) == "updating"
    assert _assess(good, since=NOW - timedelta(seconds=30)) == "succeeded"
    wrong = gates.Report("running", "healthy", "sha256:other", None, NOW)
    assert _assess(wrong, since=NOW - timedelta(seconds=300)) == "updating"
    sick = gates.Report("running", "unhealthy", "sha256:index", None, NOW)
    assert _assess(sick, since=NOW - timedelta(seconds=300)) == "updating"
    stale = gates.Report("running", "healthy", "sha256:index", None, NOW - timedelta(hours=1))
    assert _assess(stale) == "scheduled"
    late = gates.assess(
        state="updating",
        report=sick,
        accepted_digests=frozenset({"sha256:index"}),
        scheduled_at=NOW - timedelta(seconds=10),
        deadline_at=NOW,
        healthy_since=None,
        bake_seconds=30,
        now=NOW,
    )
    assert (late.state, late.failure_reason) == ("failed", "unhealthy")
    failed = gates.Report("failed", None, None, "gremlins", NOW)
    assert _assess(failed) == "failed"
