"""The rollout and rollout-device state machines as pure functions, and their stored values."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwarden.devices.models import DeviceApp
from tagwarden.devices.states import AppHealth, AppStatus, FailureReason
from tagwarden.rollouts import gates
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rollouts.states import (
    ACTIVE,
    ADVANCING,
    DEVICE_TRANSITIONS,
    FINISHED,
    IN_FLIGHT,
    PAST,
    ROLLOUT_TRANSITIONS,
    TOUCHED,
    DeviceAction,
    DeviceState,
    InvalidTransition,
    MonitorStep,
    RolloutAction,
    RolloutStatus,
    Transition,
    allowed_from,
    device_action,
    next_status,
)
from tagwarden.web.views_rollouts import ACTIONS

NOW = datetime(2026, 12, 2, tzinfo=UTC)
TRANSITIONS: list[Transition] = [*RolloutAction, *MonitorStep]


def test_the_stored_values_are_the_wire_format() -> None:
    assert [str(s) for s in RolloutStatus] == [
        "pending", "running", "paused", "completed", "failed", "aborted", "rolled_back",
    ]  # fmt: skip
    assert [str(s) for s in DeviceState] == [
        "pending", "scheduled", "updating", "succeeded", "failed", "rolled_back", "skipped",
    ]  # fmt: skip
    assert [str(s) for s in AppStatus] == ["downloading", "installing", "running", "failed"]
    assert [str(s) for s in AppHealth] == ["healthy", "unhealthy", "unknown"]
    assert [str(a) for a in RolloutAction] == ["pause", "resume", "abort", "rollback"]


def test_which_status_allows_which_operator_action() -> None:
    """What the API, the rollout page and the CLI have always allowed."""
    assert [str(s) for s in allowed_from(RolloutAction.PAUSE)] == ["pending", "running"]
    assert [str(s) for s in allowed_from(RolloutAction.RESUME)] == ["paused"]
    assert [str(s) for s in allowed_from(RolloutAction.ABORT)] == ["pending", "running", "paused"]
    assert [str(s) for s in allowed_from(RolloutAction.ROLLBACK)] == [
        "pending", "running", "paused", "completed", "failed", "aborted",
    ]  # fmt: skip
    assert PAST == {
        RolloutAction.PAUSE: "paused",
        RolloutAction.RESUME: "resumed",
        RolloutAction.ABORT: "aborted",
        RolloutAction.ROLLBACK: "rolled back",
    }


def test_the_monitor_starts_pending_rollouts_and_finishes_running_ones() -> None:
    assert next_status(RolloutStatus.PENDING, MonitorStep.START) == RolloutStatus.RUNNING
    assert next_status(RolloutStatus.RUNNING, MonitorStep.COMPLETE) == RolloutStatus.COMPLETED
    assert next_status(RolloutStatus.RUNNING, MonitorStep.FAIL) == RolloutStatus.FAILED
    assert next_status(RolloutStatus.PAUSED, MonitorStep.START) is None
    assert ADVANCING == (RolloutStatus.PENDING, RolloutStatus.RUNNING)
    assert ACTIVE == (RolloutStatus.PENDING, RolloutStatus.RUNNING, RolloutStatus.PAUSED)


def test_a_rollout_paused_before_its_first_batch_resumes_as_pending() -> None:
    assert next_status(RolloutStatus.PAUSED, RolloutAction.RESUME) == RolloutStatus.RUNNING
    assert (
        next_status(RolloutStatus.PAUSED, RolloutAction.RESUME, started=False)
        == RolloutStatus.PENDING
    )


@given(st.sampled_from(RolloutStatus), st.sampled_from(TRANSITIONS), st.booleans())
def test_next_status_is_the_table_and_refuses_what_it_does_not_list(
    status: RolloutStatus, action: Transition, started: bool
) -> None:
    target = next_status(status, action, started=started)
    assert (target is None) == (action not in ROLLOUT_TRANSITIONS[status])
    assert (status in allowed_from(action)) == (target is not None)
    if target is not None and not (action is RolloutAction.RESUME and not started):
        assert target == ROLLOUT_TRANSITIONS[status][action]


@given(st.lists(st.tuples(st.sampled_from(TRANSITIONS), st.booleans()), max_size=30))
def test_any_run_of_actions_ends_rolled_back_at_most_and_never_reopens_a_finished_rollout(
    steps: list[tuple[Transition, bool]],
) -> None:
    status = RolloutStatus.PENDING
    for action, started in steps:
        target = next_status(status, action, started=started)
        if target is None:
            continue
        if status not in ACTIVE:  # finished: only a rollback is left
            assert target == RolloutStatus.ROLLED_BACK
        status = target
    if status == RolloutStatus.ROLLED_BACK:
        assert ROLLOUT_TRANSITIONS[status] == {}


def test_the_rollout_page_offers_each_action_where_the_table_allows_it() -> None:
    assert {action: allowed_from(action) for action in RolloutAction} == ACTIONS


def test_device_state_groups_follow_the_device_table() -> None:
    assert IN_FLIGHT == (DeviceState.SCHEDULED, DeviceState.UPDATING)
    assert TOUCHED == (
        DeviceState.SCHEDULED,
        DeviceState.UPDATING,
        DeviceState.SUCCEEDED,
        DeviceState.FAILED,
    )
    assert FINISHED == (
        DeviceState.SUCCEEDED,
        DeviceState.FAILED,
        DeviceState.ROLLED_BACK,
        DeviceState.SKIPPED,
    )


@given(st.sampled_from(DeviceState), st.sampled_from(DeviceAction))
def test_device_action_finds_the_one_action_between_two_states(
    state: DeviceState, action: DeviceAction
) -> None:
    target = DEVICE_TRANSITIONS[state].get(action)
    if target is None:
        return
    assert device_action(state, target) == action


@given(st.sampled_from(DeviceState), st.sampled_from(DeviceState))
def test_device_action_refuses_a_move_the_table_lacks(
    state: DeviceState, target: DeviceState
) -> None:
    if target in DEVICE_TRANSITIONS[state].values():
        return
    with pytest.raises(InvalidTransition):
        device_action(state, target)


@given(st.lists(st.sampled_from(DeviceAction), max_size=20))
def test_a_device_leaves_a_finished_state_only_by_rollback_or_by_rejoining(
    actions: list[DeviceAction],
) -> None:
    """A skipped device may rejoin (a continuous rollout takes back one skipped as offline);
    a device that ran the rollout leaves its verdict only by a rollback."""
    state = DeviceState.PENDING
    for action in actions:
        target = DEVICE_TRANSITIONS[state].get(action)
        if target is None:
            continue
        if state == DeviceState.SKIPPED:
            assert (action, target) == (DeviceAction.REJOIN, DeviceState.PENDING)
        elif state in FINISHED:
            assert target == DeviceState.ROLLED_BACK
        state = target


reports = st.builds(
    gates.Report,
    status=st.none() | st.sampled_from(AppStatus),
    health=st.none() | st.sampled_from(AppHealth),
    digest=st.sampled_from([None, "sha256:new", "sha256:old"]),
    reason=st.none() | st.sampled_from([*FailureReason, "something-new"]),
    reported_at=st.none() | st.sampled_from([NOW - timedelta(hours=1), NOW, NOW + timedelta(1)]),
)


@given(
    st.sampled_from(IN_FLIGHT),
    reports,
    st.integers(min_value=-120, max_value=120),
    st.none() | st.integers(min_value=0, max_value=120),
    st.integers(min_value=0, max_value=60),
)
def test_the_gates_only_give_moves_the_device_table_allows(
    state: DeviceState,
    report: gates.Report,
    deadline_in: int,
    healthy_for: int | None,
    bake: int,
) -> None:
    verdict = gates.assess(
        state=state,
        report=report,
        accepted_digests=frozenset({"sha256:new"}),
        scheduled_at=NOW,
        deadline_at=NOW + timedelta(seconds=deadline_in),
        healthy_since=None if healthy_for is None else NOW - timedelta(seconds=healthy_for),
        bake_seconds=bake,
        now=NOW,
    )
    if verdict.state != state:
        device_action(state, verdict.state)  # raises for a move the table lacks
    if verdict.state == DeviceState.FAILED:
        assert verdict.failure_reason in set(FailureReason)


def _migration() -> ModuleType:
    path = (
        Path(__file__).parents[2] / "src/tagwarden/migrations/versions/2026_12_02_rollout_states.py"
    )
    spec = importlib.util.spec_from_file_location("rollout_states_migration", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_sql(table: object, column: str) -> str:
    for constraint in table.constraints:  # type: ignore[attr-defined]
        if constraint.name == f"ck_{table.name}_{column}":  # type: ignore[attr-defined]
            return str(constraint.sqltext)
    raise AssertionError(f"no CHECK on {column}")


@pytest.mark.parametrize(
    ("model", "column", "enum"),
    [
        (Rollout, "status", RolloutStatus),
        (RolloutDevice, "state", DeviceState),
        (DeviceApp, "status", AppStatus),
        (DeviceApp, "health", AppHealth),
    ],
)
def test_the_models_and_the_migration_check_the_enums_values(
    model: type, column: str, enum: type
) -> None:
    values = tuple(str(v) for v in enum)
    table = model.__table__  # type: ignore[attr-defined]
    listed = ", ".join(f"'{v}'" for v in values)
    assert _check_sql(table, column) == f"{column} IN ({listed})"
    assert _migration().CHECKS[table.name][column] == values


def _doc_table(heading: str) -> list[list[str]]:
    """The rows of the first table under ``heading`` in docs/rollout-states.md."""
    text = (Path(__file__).parents[2] / "docs/rollout-states.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.parametrize(
    ("heading", "table", "states", "actions"),
    [
        ("A rollout's status", ROLLOUT_TRANSITIONS, RolloutStatus, TRANSITIONS),
        ("A device's place in a rollout", DEVICE_TRANSITIONS, DeviceState, list(DeviceAction)),
    ],
)
def test_the_documented_tables_are_the_codes(
    heading: str, table: Any, states: type, actions: list[Any]
) -> None:
    header, _rule, *rows = _doc_table(heading)
    assert header[1:] == [str(a) for a in actions]
    assert [row[0] for row in rows] == [str(s) for s in states]
    documented = {
        (row[0], action): cell
        for row in rows
        for action, cell in zip(header[1:], row[1:], strict=True)
    }
    code = {
        (str(s), str(a)): str(table[s][a]) if a in table[s] else "" for s in states for a in actions
    }
    assert documented == code
