"""A notification delivery's state machine: the outbox worker sends a pending delivery and
records what happened; the one table says where each outcome leads."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    # Given up after outbox_max_attempts; an admin sees it among the recent failures.
    FAILED = "failed"


class DeliveryOutcome(StrEnum):
    SENT = "sent"
    # A failed attempt with attempts left: the delivery waits for its backoff and stays pending.
    RETRY = "retry"
    GIVE_UP = "give_up"


TRANSITIONS: Final[Mapping[tuple[DeliveryStatus, DeliveryOutcome], DeliveryStatus]] = {
    (DeliveryStatus.PENDING, DeliveryOutcome.SENT): DeliveryStatus.DELIVERED,
    (DeliveryStatus.PENDING, DeliveryOutcome.RETRY): DeliveryStatus.PENDING,
    (DeliveryStatus.PENDING, DeliveryOutcome.GIVE_UP): DeliveryStatus.FAILED,
}

# Only a pending delivery is ever sent: the worker claims and records with this status.
SENDABLE: Final = DeliveryStatus.PENDING
