"""The approval request's state machine: its statuses, the actions on it, and the one table of
which action leads where. Services, views and the CLI read this table; nothing else says it."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, Literal


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RequestAction(StrEnum):
    # A person's or a rule's yes; with four-eyes the request stays pending until the image's
    # required number of distinct approvers said yes (see approvals.decisions).
    APPROVE = "approve"
    REJECT = "reject"
    # A re-push of the tag: the pending request no longer describes what would deploy.
    SUPERSEDE = "supersede"
    # Activation (the seeds' "process"): only an approved request, any number of times.
    PROCESS = "process"


TRANSITIONS: Final[Mapping[tuple[RequestStatus, RequestAction], RequestStatus]] = {
    (RequestStatus.PENDING, RequestAction.APPROVE): RequestStatus.APPROVED,
    (RequestStatus.PENDING, RequestAction.REJECT): RequestStatus.REJECTED,
    (RequestStatus.PENDING, RequestAction.SUPERSEDE): RequestStatus.REJECTED,
    (RequestStatus.APPROVED, RequestAction.PROCESS): RequestStatus.APPROVED,
}


def allows(status: str, action: RequestAction) -> bool:
    return (RequestStatus(status), action) in TRANSITIONS


def after(status: str, action: RequestAction) -> RequestStatus:
    """The status ``action`` leads to; KeyError where the table has no such step."""
    return TRANSITIONS[(RequestStatus(status), action)]


def statuses_allowing(action: RequestAction) -> tuple[RequestStatus, ...]:
    return tuple(status for status, step in TRANSITIONS if step is action)


# The filters of the request lists, as the API documents them (a test holds them to the enum):
# a status, or every status.
StatusFilter = Literal["pending", "approved", "rejected", "all"]
# The history page's: one decided status, or both.
DecidedFilter = Literal["approved", "rejected", "decided"]
ALL: Final = "all"
BOTH_DECIDED: Final = "decided"

# Where a decision can be taken: the queue people work through, the one pending request per tag.
DECIDABLE: Final = statuses_allowing(RequestAction.APPROVE)
DECIDED: Final = tuple(s for s in RequestStatus if s not in DECIDABLE)
