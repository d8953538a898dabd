"""Device request and response bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, Strict, field_validator

from tagwarden.devices.models import Device, DeviceApp
from tagwarden.devices.states import AppHealth, AppStatus, FailureReason
from tagwarden.errors import InvalidInput
from tagwarden.inputs import DEVICE_INPUT, NO_NUL, STRICT_INPUT, Key, Text, keys
from tagwarden.platforms import normalise_architecture

UUID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
APP_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
ARCH_PATTERN = r"^[a-z0-9]+(/[a-z0-9]+)?$"
ARCH_INPUT_PATTERN = r"^([Ll][Ii][Nn][Uu][Xx]/)?[A-Za-z0-9]+(/[A-Za-z0-9]+)?$"
# A label filter is key=value with a key that is not blank (parse_labels strips both sides).
LABEL_FILTER_PATTERN = r"^[^=\x00]*[^=\s\x00][^=\x00]*=[^\x00]*$"
LabelValue = Annotated[str, Field(max_length=255, pattern=NO_NUL)]
# check_labels's rule in the document: at most 50, keys 1-63 characters, values at most 255.
Labels = Annotated[
    dict[Key, LabelValue],
    Field(max_length=50, json_schema_extra=keys(minLength=1, maxLength=63)),
]
DeviceUuid = Annotated[str, Field(pattern=UUID_PATTERN)]
# A report's enums arrive as JSON strings; strict mode alone would accept only enum members.
Reported = Strict(False)


def parse_labels(items: Iterable[str], *, what: str = "label") -> dict[str, str]:
    """``key=value`` strings → labels; anything else is refused, naming the item."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.strip().partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{what} {item.strip()!r} must be key=value")
        labels[key.strip()] = value.strip()
    return labels


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > 50:
        raise ValueError("at most 50 labels")
    for key, value in labels.items():
        if not key or len(key) > 63 or len(value) > 255:
            raise ValueError(f"label {key!r}: keys are 1-63 characters, values at most 255")
    return labels


class DeviceCreate(BaseModel):
    model_config = STRICT_INPUT

    uuid: str = Field(pattern=UUID_PATTERN)
    name: Text | None = Field(default=None, min_length=1, max_length=255)
    # What normalise_architecture turns into ARCH_PATTERN: "arm64", "ARM/v7", "linux/amd64".
    # The pattern is documentation (the common spellings); _arch decides, so that what
    # normalise_architecture knows (x86_64, aarch64, …) is still taken.
    architecture: str = Field(max_length=32, json_schema_extra={"pattern": ARCH_INPUT_PATTERN})
    labels: Labels = Field(default_factory=dict)

    @field_validator("architecture")
    @classmethod
    def _arch(cls, value: str) -> str:
        arch = normalise_architecture(value)
        if not re.match(ARCH_PATTERN, arch):
            raise ValueError(f"{value!r} is not an architecture (e.g. amd64, arm64, arm/v7)")
        return arch

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)


class DeviceUpdate(BaseModel):
    """A device's name and labels; a field left out keeps its value, labels are replaced whole."""

    model_config = STRICT_INPUT

    name: Text | None = Field(default=None, min_length=1, max_length=255)
    labels: Labels | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_labels(value)


class AppTarget(BaseModel):
    image: str | None
    tag: str | None
    digest: str | None
    rollout_id: int | None


class AppOut(BaseModel):
    target: AppTarget
    reported: dict[str, Any]

    @classmethod
    def of(cls, app: DeviceApp) -> AppOut:
        return cls(
            target=AppTarget(
                image=app.reference, tag=app.tag, digest=app.digest, rollout_id=app.rollout_id
            ),
            reported=app.as_report(),
        )


class DeviceOut(BaseModel):
    id: int
    uuid: str
    name: str
    architecture: str
    labels: dict[str, str]
    key_prefix: str
    state_version: int
    last_seen_at: datetime | None
    created_at: datetime
    apps: dict[str, AppOut] | None = None

    @classmethod
    def of(cls, device: Device, apps: list[DeviceApp] | None = None) -> DeviceOut:
        return cls(
            id=device.id,
            uuid=device.uuid,
            name=device.name,
            architecture=device.architecture,
            labels=device.labels,
            key_prefix=device.key_prefix,
            state_version=device.state_version,
            last_seen_at=device.last_seen_at,
            created_at=device.created_at,
            apps=None if apps is None else {a.app_name: AppOut.of(a) for a in apps},
        )


class DeviceCreated(DeviceOut):
    device_key: str = Field(description="shown once; the device's bearer key for its state")


class AppReport(BaseModel):
    model_config = DEVICE_INPUT

    image: str | None = Field(default=None, max_length=600)
    digest: str | None = Field(default=None, max_length=100)
    status: Annotated[AppStatus, Reported]
    health: Annotated[AppHealth, Reported] = AppHealth.UNKNOWN
    reason: Annotated[FailureReason, Reported] | None = None
    message: str | None = Field(default=None, max_length=2000)


class StateReport(BaseModel):
    model_config = DEVICE_INPUT

    # The app-name rule _names checks, in the document too, so every schema-valid report
    # is accepted.
    apps: dict[str, AppReport] = Field(
        max_length=50, json_schema_extra={"propertyNames": {"pattern": APP_PATTERN}}
    )

    @field_validator("apps")
    @classmethod
    def _names(cls, value: dict[str, AppReport]) -> dict[str, AppReport]:
        for name in value:
            if not re.match(APP_PATTERN, name):
                raise ValueError(f"{name!r} is not an app name (lowercase, digits, . _ -)")
        return value


class ReportOut(BaseModel):
    accepted: list[str]
