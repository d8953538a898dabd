"""What a device says about one of its apps (pure): the values its reports may carry.

A device app has no transitions of the server's making: the device reports whatever its agent
sees (downloading, installing, running, failed) in any order, and the server keeps the last
report. The enums are what the report schema accepts and the ``device_apps`` CHECK constraints
hold; the rollout monitor judges them (``rollouts.gates``).
"""

from __future__ import annotations

from enum import StrEnum


class AppStatus(StrEnum):
    DOWNLOADING = "downloading"
    INSTALLING = "installing"
    RUNNING = "running"
    FAILED = "failed"


class AppHealth(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class FailureReason(StrEnum):
    """Why an app failed, as the device reports it and as a rollout records it."""

    PULL_FAILED = "pull_failed"
    DISK_FULL = "disk_full"
    UNHEALTHY = "unhealthy"
    CRASHLOOP = "crashloop"
    TIMEOUT = "timeout"
    OTHER = "other"

    @classmethod
    def of(cls, value: str | None) -> FailureReason:
        """The reason ``value`` names; OTHER for none, or for one this server does not know."""
        return cls(value) if value is not None and value in cls._value2member_map_ else cls.OTHER
