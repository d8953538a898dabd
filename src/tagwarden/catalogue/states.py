"""The image's state machine (its ``approval_status``): admitted into the catalogue by an
approved image-level request, refused by a rejected one. One table, read by every caller."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, Literal


class ImageStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


# The image list's filter, as the API documents it (a test holds it to the enum).
StatusName = Literal["pending", "approved", "rejected"]


class ImageAction(StrEnum):
    ADMIT = "admit"
    REFUSE = "refuse"


TRANSITIONS: Final[Mapping[tuple[ImageStatus, ImageAction], ImageStatus]] = {
    (ImageStatus.PENDING, ImageAction.ADMIT): ImageStatus.APPROVED,
    (ImageStatus.PENDING, ImageAction.REFUSE): ImageStatus.REJECTED,
}


def allows(status: str, action: ImageAction) -> bool:
    return (ImageStatus(status), action) in TRANSITIONS


def after(status: str, action: ImageAction) -> ImageStatus:
    """The status ``action`` leads to; KeyError where the table has no such step."""
    return TRANSITIONS[(ImageStatus(status), action)]
