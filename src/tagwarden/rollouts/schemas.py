"""Rollout request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tagwarden import references
from tagwarden.devices.schemas import APP_PATTERN, DeviceUuid, Labels, check_labels
from tagwarden.inputs import INT32_MAX, NO_NUL, STRICT_INPUT, WHOLE, Id, leave_out
from tagwarden.rollouts import planner, windows
from tagwarden.rollouts.models import Rollout

# A failure allowance as a string: a percentage up to 100%, said in the document too.
PERCENT_PATTERN = r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)%$"

# The rules a body's validators apply across fields, in JSON Schema too, so that a body the
# document allows is one the server takes. A field set to null counts as left out.
_NULL = {"type": "null"}
ONE_CANARY_SIZE: dict[str, Any] = {
    "anyOf": [
        {"properties": {"canary_percent": _NULL}},
        {"properties": {"canary_count": _NULL}},
    ]
}
OPTIONS_FIT_STRATEGY: dict[str, Any] = {
    "anyOf": [
        {"properties": {"strategy": {"const": "canary"}}},
        {
            "required": ["strategy"],
            "properties": {
                "strategy": {"const": "batched"},
                "options": {
                    "properties": {"canary_count": _NULL, "canary_percent": _NULL},
                },
            },
        },
        {
            "required": ["strategy"],
            "properties": {
                "strategy": {"const": "all-at-once"},
                "options": {
                    "properties": {
                        "canary_count": _NULL,
                        "canary_percent": _NULL,
                        "batch_size": _NULL,
                    },
                },
            },
        },
    ]
}


ONE_RATE: dict[str, Any] = {
    "anyOf": [
        {"properties": {"max_per_minute": _NULL}},
        {"properties": {"ramp": _NULL}},
    ]
}
# A continuous rollout is open to devices that match its selector later: a list of devices has
# no later.
CONTINUOUS_NEEDS_SELECTOR: dict[str, Any] = {
    "anyOf": [
        {"required": ["selector"]},
        {"properties": {"options": {"properties": {"continuous": {"const": False}}}}},
    ]
}


def one_of(*fields: str) -> dict[str, Any]:
    """Exactly one of the fields given (each is documented without null, see ``leave_out``)."""
    return {"oneOf": [{"required": [f]} for f in fields]}


DEVICES_OR_SELECTOR = one_of("devices", "selector")


class MaintenanceWindow(BaseModel):
    """A time devices may switch in: from each time ``cron`` names, in ``timezone``, for
    ``duration_minutes``."""

    model_config = ConfigDict(**STRICT_INPUT)

    cron: str = Field(
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="five fields: minute hour day-of-month month day-of-week",
        examples=["0 2 * * 6"],
    )
    # The bounds are the document's; the validator applies them, with a message of its own.
    duration_minutes: Annotated[int, WHOLE] = Field(
        description="minutes of elapsed time the window stays open",
        json_schema_extra={"minimum": 1, "maximum": windows.MAX_DURATION_MINUTES},
    )
    timezone: str = Field(min_length=1, max_length=64, pattern=NO_NUL, examples=["Europe/Berlin"])

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        error = windows.cron_error(value)
        if error:
            raise ValueError(error)
        return " ".join(value.split())

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        error = windows.timezone_error(value)
        if error:
            raise ValueError(error)
        return value

    @field_validator("duration_minutes")
    @classmethod
    def _duration(cls, value: int) -> int:
        error = windows.duration_error(value)
        if error:
            raise ValueError(error)
        return value


Count = Annotated[int, Field(ge=1, le=INT32_MAX), WHOLE]


class RampOptions(BaseModel):
    """Exponential rate (as AWS IoT Jobs' exponentialRate)."""

    model_config = STRICT_INPUT

    start_per_minute: Count = Field(description="devices started per minute at first")
    factor: float = Field(gt=1, le=5, description="the rate is multiplied by this ...")
    every_succeeded: Count = Field(description="... each time this many more have succeeded")


class AbortOptions(BaseModel):
    """Stop on a failure share: on_failure (pause or rollback) once at least min_devices have
    finished (succeeded or failed) and more than failure_percent of them failed."""

    model_config = STRICT_INPUT

    failure_percent: float = Field(ge=0, le=100)
    min_devices: Count


class RolloutOptions(BaseModel):
    model_config = ConfigDict(
        **STRICT_INPUT, json_schema_extra={"allOf": [ONE_CANARY_SIZE, ONE_RATE]}
    )

    canary_percent: float | None = Field(default=None, gt=0, le=100)
    canary_count: Annotated[int, Field(ge=1, le=INT32_MAX), WHOLE] | None = None
    batch_size: Annotated[int, Field(ge=1, le=INT32_MAX), WHOLE] | None = None
    bake_seconds: Annotated[int, Field(ge=0, le=7 * 86400), WHOLE] = 30
    health_timeout: Annotated[int, Field(ge=1, le=7 * 86400), WHOLE] = 600
    max_failures: (
        Annotated[int, Field(ge=0, le=INT32_MAX), WHOLE]
        | Annotated[str, Field(pattern=PERCENT_PATTERN)]
    ) = Field(default=0, description="a count, or a percentage: '10%'")
    on_failure: Literal["pause", "rollback"] = "pause"
    windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        max_length=50,
        description="maintenance windows; none: devices switch at once",
    )
    max_per_minute: Count | None = Field(
        default=None, description="devices started per minute, at most"
    )
    ramp: RampOptions | None = None
    abort: AbortOptions | None = None
    continuous: bool = Field(
        default=False,
        description="a selector rollout stays open: devices that match it later join the "
        "next batch, until it is closed",
    )
    offline: Literal["skip", "wait"] | None = Field(
        default=None,
        description="skip: an offline device does not hold its batch; wait: the batch waits "
        "for it; default: skipped when planned, judged by its deadline after",
    )

    @model_validator(mode="after")
    def _combinations(self) -> RolloutOptions:
        if self.canary_percent is not None and self.canary_count is not None:
            raise ValueError("give canary_percent or canary_count, not both")
        if self.max_per_minute is not None and self.ramp is not None:
            raise ValueError("give max_per_minute or ramp, not both")
        # With a failure share to stop on, the count allowance's default (0: the first
        # failure stops the rollout) would decide first; left out, it allows every failure.
        if self.abort is not None and "max_failures" not in self.model_fields_set:
            self.max_failures = "100%"
        return self

    def to_plan(self) -> planner.Options:
        return planner.Options.of(self.model_dump())


class RolloutCreate(BaseModel):
    model_config = ConfigDict(
        **STRICT_INPUT,
        json_schema_extra={
            "allOf": [
                one_of("image", "image_id"),
                DEVICES_OR_SELECTOR,
                OPTIONS_FIT_STRATEGY,
                CONTINUOUS_NEEDS_SELECTOR,
            ]
        },
    )

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        pattern=NO_NUL,
        examples=["redis"],
        json_schema_extra=leave_out,
    )
    image_id: Id | None = Field(default=None, json_schema_extra=leave_out)
    tag: str = Field(pattern=references.TAG_PATTERN, examples=["7.2.5-alpine"])
    devices: list[DeviceUuid] | None = Field(
        default=None, min_length=1, max_length=100_000, json_schema_extra=leave_out
    )
    selector: Labels | None = Field(
        default=None, description="labels, all must match", json_schema_extra=leave_out
    )
    app: str | None = Field(default=None, pattern=APP_PATTERN, description="default: image name")
    strategy: Literal["all-at-once", "canary", "batched"] = "canary"
    options: RolloutOptions = Field(default_factory=RolloutOptions)
    dry_run: bool = False

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        error = references.tag_error(value)
        if error:
            raise ValueError(error)
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_labels(value)

    @model_validator(mode="after")
    def _targets(self) -> RolloutCreate:
        if (self.image is None) == (self.image_id is None):
            raise ValueError("give image (e.g. 'redis') or image_id")
        if (self.devices is None) == (self.selector is None):
            raise ValueError("give devices (uuids) or a label selector, not both or neither")
        if self.strategy != "canary" and (
            self.options.canary_count is not None or self.options.canary_percent is not None
        ):
            raise ValueError("canary_count and canary_percent apply only to the canary strategy")
        if self.strategy == "all-at-once" and self.options.batch_size is not None:
            raise ValueError("batch_size does not apply to the all-at-once strategy")
        if self.options.continuous and self.selector is None:
            raise ValueError("continuous applies only to a rollout by label selector")
        return self


class SkippedOut(BaseModel):
    device: str
    reason: str


class BatchOut(BaseModel):
    batch: int
    devices: list[str]
    counts: dict[str, int] | None = None


DOWNLOAD_BYTES = (
    "bytes the device downloads for the target: the target's blobs (config and layers, each "
    "once) that its current image (what it last reported running, else its current target) "
    "does not hold; all of them when that image or its blobs are not known (no image yet, or "
    "sizes only from Docker Hub's API, which names no layers); null when the target's size is "
    "not known"
)
DOWNLOAD_TOTAL = "the sum over the targeted devices; null when any device's is not known"


class PlanOut(BaseModel):
    dry_run: Literal[True] = True
    image: str
    tag: str
    digest: str
    app: str
    strategy: str
    options: dict[str, Any]
    batches: list[BatchOut]
    skipped: list[SkippedOut]
    download_bytes: dict[str, int | None] = Field(
        default_factory=dict, description="targeted device → " + DOWNLOAD_BYTES
    )
    download_bytes_total: int | None = Field(default=None, description=DOWNLOAD_TOTAL)


class RolloutDeviceOut(BaseModel):
    device: str
    batch: int | None
    state: str
    skip_reason: str | None
    failure_reason: str | None
    message: str | None
    scheduled_at: datetime | None
    finished_at: datetime | None
    download_bytes: int | None = Field(default=None, description=DOWNLOAD_BYTES)


class RolloutOut(BaseModel):
    id: int
    image_id: int
    image: str
    tag: str
    digest: str
    reference: str
    app: str
    strategy: str
    options: dict[str, Any]
    target_devices: list[str]
    selector: dict[str, str] | None
    status: str
    status_reason: str | None
    current_batch: int | None
    batch_count: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    closed_at: datetime | None = Field(
        default=None, description="when a continuous rollout was closed to new devices"
    )
    counts: dict[str, int]
    failures: dict[str, int]
    batches: list[BatchOut] | None = None
    skipped: list[SkippedOut] | None = None
    devices: list[RolloutDeviceOut] | None = None
    download_bytes_total: int | None = Field(default=None, description=DOWNLOAD_TOTAL)

    @classmethod
    def of(cls, rollout: Rollout, counts: dict[str, int], failures: dict[str, int]) -> RolloutOut:
        return cls(
            id=rollout.id,
            image_id=rollout.image_id,
            image=rollout.image,
            tag=rollout.tag,
            digest=rollout.digest,
            reference=f"{rollout.image}:{rollout.tag}@{rollout.digest}",
            app=rollout.app_name,
            strategy=rollout.strategy,
            options=rollout.options,
            target_devices=rollout.target_devices,
            selector=rollout.selector,
            status=rollout.status,
            status_reason=rollout.status_reason,
            current_batch=rollout.current_batch,
            batch_count=rollout.batch_count,
            created_by=rollout.created_by,
            created_at=rollout.created_at,
            updated_at=rollout.updated_at,
            started_at=rollout.started_at,
            finished_at=rollout.finished_at,
            closed_at=rollout.closed_at,
            counts=counts,
            failures=failures,
        )


class RolloutTemplate(BaseModel):
    """The rollout started by itself when one of the image's tags is activated (auto-rollout).

    Validated like a rollout request, so a template that could never start is refused when it
    is saved rather than when a tag is approved.
    """

    model_config = ConfigDict(
        **STRICT_INPUT,
        json_schema_extra={
            "allOf": [DEVICES_OR_SELECTOR, OPTIONS_FIT_STRATEGY, CONTINUOUS_NEEDS_SELECTOR]
        },
    )

    strategy: Literal["all-at-once", "canary", "batched"] = "canary"
    selector: Labels | None = Field(
        default=None,
        description="device labels, all must match ({} = every device)",
        json_schema_extra=leave_out,
    )
    devices: list[DeviceUuid] | None = Field(
        default=None, min_length=1, max_length=100_000, json_schema_extra=leave_out
    )
    app: str | None = Field(
        default=None, pattern=APP_PATTERN, description="default: the image name"
    )
    options: RolloutOptions = Field(default_factory=RolloutOptions)

    @model_validator(mode="after")
    def _valid_as_a_rollout(self) -> RolloutTemplate:
        try:
            self.request_for(image_id=1, tag="template-check")
        except ValidationError as exc:
            raise ValueError(
                "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            ) from exc
        return self

    def request_for(self, *, image_id: int, tag: str) -> RolloutCreate:
        return RolloutCreate(
            image_id=image_id,
            tag=tag,
            selector=self.selector,
            devices=self.devices,
            app=self.app,
            strategy=self.strategy,
            options=self.options,
        )
