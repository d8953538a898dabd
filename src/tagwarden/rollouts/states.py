"""The two state machines of a rollout (pure): the rollout's status and each device's state.

Each machine is one table, status → action → the status it leads to. The service, the rollout
monitor, the rollout page and the CLI all read these tables; an action that a status does not
list is refused (409 ``invalid_state`` for an operator's action).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class RolloutStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"


class RolloutAction(StrEnum):
    """An operator's action, through the API, the rollout page or the CLI (the path's last
    segment). The rollout monitor takes two of them too: it pauses or rolls back a rollout
    whose failures exceed the allowance."""

    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    ROLLBACK = "rollback"


class MonitorStep(StrEnum):
    """What only the rollout monitor does to a rollout."""

    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"


Transition = RolloutAction | MonitorStep

# What an operator's action did, for messages: "only a paused rollout can be resumed".
PAST = {
    RolloutAction.PAUSE: "paused",
    RolloutAction.RESUME: "resumed",
    RolloutAction.ABORT: "aborted",
    RolloutAction.ROLLBACK: "rolled back",
}

_S, _A, _M = RolloutStatus, RolloutAction, MonitorStep
ROLLOUT_TRANSITIONS: Mapping[RolloutStatus, Mapping[Transition, RolloutStatus]] = {
    _S.PENDING: {
        _M.START: _S.RUNNING,
        _A.PAUSE: _S.PAUSED,
        _A.ABORT: _S.ABORTED,
        _A.ROLLBACK: _S.ROLLED_BACK,
    },
    _S.RUNNING: {
        _A.PAUSE: _S.PAUSED,
        _A.ABORT: _S.ABORTED,
        _A.ROLLBACK: _S.ROLLED_BACK,
        _M.COMPLETE: _S.COMPLETED,
        _M.FAIL: _S.FAILED,
    },
    # A rollout paused before its first batch resumes as pending (see next_status).
    _S.PAUSED: {_A.RESUME: _S.RUNNING, _A.ABORT: _S.ABORTED, _A.ROLLBACK: _S.ROLLED_BACK},
    # Finished: only a rollback, which restores what the rollout changed, is left.
    _S.COMPLETED: {_A.ROLLBACK: _S.ROLLED_BACK},
    _S.FAILED: {_A.ROLLBACK: _S.ROLLED_BACK},
    _S.ABORTED: {_A.ROLLBACK: _S.ROLLED_BACK},
    _S.ROLLED_BACK: {},
}


def allowed_from(action: Transition) -> tuple[RolloutStatus, ...]:
    """The statuses that allow ``action``, in the order the statuses are declared."""
    return tuple(s for s in RolloutStatus if action in ROLLOUT_TRANSITIONS[s])


def next_status(
    status: RolloutStatus, action: Transition, *, started: bool = True
) -> RolloutStatus | None:
    """The status ``action`` leads to from ``status``; None where it is refused.

    ``started``: whether a batch has been targeted. Resuming a rollout that was paused before
    the monitor started it makes it pending again, so the monitor's start (the
    ``rollout.started`` event and the first batch) still happens once.
    """
    target = ROLLOUT_TRANSITIONS[status].get(action)
    if target == RolloutStatus.RUNNING and action == RolloutAction.RESUME and not started:
        return RolloutStatus.PENDING
    return target


# A rollout holds its devices ("one active rollout per device and app") while it can still be
# aborted; the monitor advances those it can start or finish.
ACTIVE = allowed_from(RolloutAction.ABORT)
ADVANCING = tuple(s for s in RolloutStatus if any(a in ROLLOUT_TRANSITIONS[s] for a in MonitorStep))


class DeviceState(StrEnum):
    """One device's place in one rollout (``rollout_devices.state``)."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    UPDATING = "updating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"


class DeviceAction(StrEnum):
    SCHEDULE = "schedule"  # its batch is targeted: the device gets the new target
    UPDATE = "update"  # a report since the target, not yet a verdict
    SUCCEED = "succeed"  # healthy on the target digest through the bake time
    FAIL = "fail"  # reported failed, or no success by the deadline
    ROLL_BACK = "roll_back"  # the rollout was rolled back: the previous target is restored
    SKIP = "skip"  # never targeted: aborted or rolled back first
    REJOIN = "rejoin"  # skipped as offline, back online while a continuous rollout is open


_D, _DA = DeviceState, DeviceAction
# A device starts pending (in a batch) or skipped (the planner left it out).
DEVICE_TRANSITIONS: Mapping[DeviceState, Mapping[DeviceAction, DeviceState]] = {
    _D.PENDING: {_DA.SCHEDULE: _D.SCHEDULED, _DA.SKIP: _D.SKIPPED},
    _D.SCHEDULED: {
        _DA.UPDATE: _D.UPDATING,
        _DA.SUCCEED: _D.SUCCEEDED,
        _DA.FAIL: _D.FAILED,
        _DA.ROLL_BACK: _D.ROLLED_BACK,
    },
    _D.UPDATING: {_DA.SUCCEED: _D.SUCCEEDED, _DA.FAIL: _D.FAILED, _DA.ROLL_BACK: _D.ROLLED_BACK},
    _D.SUCCEEDED: {_DA.ROLL_BACK: _D.ROLLED_BACK},
    _D.FAILED: {_DA.ROLL_BACK: _D.ROLLED_BACK},
    _D.ROLLED_BACK: {},
    _D.SKIPPED: {_DA.REJOIN: _D.PENDING},
}


def device_states_allowing(action: DeviceAction) -> tuple[DeviceState, ...]:
    return tuple(s for s in DeviceState if action in DEVICE_TRANSITIONS[s])


class InvalidTransition(Exception):
    """A device move the table does not allow: a fault in the code, never in the input."""


def device_action(state: DeviceState, target: DeviceState) -> DeviceAction:
    """The action that moves a device from ``state`` to ``target`` (the gates give targets)."""
    for action, reached in DEVICE_TRANSITIONS[state].items():
        if reached == target:
            return action
    raise InvalidTransition(f"a rollout device cannot go from {state} to {target}")


def device_states_reached_by(*actions: DeviceAction) -> tuple[DeviceState, ...]:
    reached = {t for moves in DEVICE_TRANSITIONS.values() for a, t in moves.items() if a in actions}
    return tuple(s for s in DeviceState if s in reached)


# Waiting for a verdict; given the new target (what a rollback restores); done (finished_at).
IN_FLIGHT = device_states_allowing(DeviceAction.SUCCEED)
TOUCHED = device_states_allowing(DeviceAction.ROLL_BACK)
FINISHED = device_states_reached_by(
    DeviceAction.SUCCEED, DeviceAction.FAIL, DeviceAction.ROLL_BACK, DeviceAction.SKIP
)
