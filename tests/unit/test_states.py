"""The state machines' tables, as pure data: what the API documents and the database checks
is what the enums say."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import get_args

from sqlalchemy import CheckConstraint

from tagwarden.approvals import states as requests
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import RequestAction, RequestStatus
from tagwarden.catalogue import states as images
from tagwarden.catalogue.models import Image
from tagwarden.catalogue.states import ImageAction, ImageStatus
from tagwarden.migrations import MIGRATIONS_DIR
from tagwarden.notify import states as deliveries
from tagwarden.notify.models import NotificationDelivery
from tagwarden.notify.states import DeliveryOutcome, DeliveryStatus


def _migration() -> ModuleType:
    path = MIGRATIONS_DIR / "versions" / "2026_12_02_request_states.py"
    spec = importlib.util.spec_from_file_location("request_states_migration", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_of(model: type, name: str) -> str:
    table = model.__table__  # type: ignore[attr-defined]
    checks = [c for c in table.constraints if isinstance(c, CheckConstraint)]
    (found,) = [str(c.sqltext) for c in checks if str(c.name).endswith(name)]
    return found


def test_the_request_filters_are_the_statuses_and_all() -> None:
    assert get_args(requests.StatusFilter) == (*RequestStatus, requests.ALL)
    assert get_args(requests.DecidedFilter) == (*requests.DECIDED, requests.BOTH_DECIDED)


def test_the_image_filter_is_the_statuses() -> None:
    assert get_args(images.StatusName) == tuple(ImageStatus)


def test_only_a_pending_request_is_decided_and_only_an_approved_one_processed() -> None:
    assert requests.DECIDABLE == (RequestStatus.PENDING,)
    assert requests.statuses_allowing(RequestAction.PROCESS) == (RequestStatus.APPROVED,)
    assert requests.after(RequestStatus.PENDING, RequestAction.SUPERSEDE) is RequestStatus.REJECTED
    assert not requests.allows(RequestStatus.REJECTED, RequestAction.PROCESS)


def test_an_image_is_admitted_or_refused_only_while_pending() -> None:
    for action in ImageAction:
        assert images.allows(ImageStatus.PENDING, action)
        assert not images.allows(ImageStatus.APPROVED, action)
        assert not images.allows(ImageStatus.REJECTED, action)


def test_the_models_check_what_the_migration_created() -> None:
    by_table = {table: condition for table, _, condition in _migration().CHECKS}
    assert _check_of(ApprovalRequest, "status") == by_table["image_approval_requests"]
    assert _check_of(Image, "approval_status") == by_table["images"]


def test_the_tables_are_the_documented_machines() -> None:
    """docs/approvals.md's two tables; a new step is a change of behaviour, decided here."""
    pending, approved, rejected = RequestStatus
    assert dict(requests.TRANSITIONS) == {
        (pending, RequestAction.APPROVE): approved,
        (pending, RequestAction.REJECT): rejected,
        (pending, RequestAction.SUPERSEDE): rejected,
        (approved, RequestAction.PROCESS): approved,
    }
    assert dict(images.TRANSITIONS) == {
        (ImageStatus.PENDING, ImageAction.ADMIT): ImageStatus.APPROVED,
        (ImageStatus.PENDING, ImageAction.REFUSE): ImageStatus.REJECTED,
    }


def test_a_delivery_leaves_pending_only_as_delivered_or_failed() -> None:
    # Every (status, outcome) pair: only a pending delivery moves, and a retry keeps it pending.
    for status in DeliveryStatus:
        for outcome in DeliveryOutcome:
            moved = deliveries.TRANSITIONS.get((status, outcome))
            if status is not DeliveryStatus.PENDING:
                assert moved is None, (status, outcome)
    assert dict(deliveries.TRANSITIONS) == {
        (DeliveryStatus.PENDING, DeliveryOutcome.SENT): DeliveryStatus.DELIVERED,
        (DeliveryStatus.PENDING, DeliveryOutcome.RETRY): DeliveryStatus.PENDING,
        (DeliveryStatus.PENDING, DeliveryOutcome.GIVE_UP): DeliveryStatus.FAILED,
    }
    assert _check_of(NotificationDelivery, "status") == (
        "status IN ('pending', 'delivered', 'failed')"
    )
