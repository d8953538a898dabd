"""Fix-ups for request bodies drawn from the OpenAPI document, where what the server checks is
more than JSON Schema can say (a bad value is a 422, tested where the feature is)."""

from __future__ import annotations

from typing import Any


def real_windows(value: Any) -> None:
    """Whether a string is a cron expression or a timezone this server knows is not something
    JSON Schema can say (a bad one is a 422, tested in test_rollout_windows.py): every drawn
    maintenance window gets a real schedule, with its drawn duration."""
    if isinstance(value, list):
        for item in value:
            real_windows(item)
    elif isinstance(value, dict):
        windows = value.get("windows")
        if isinstance(windows, list):
            for window in windows:
                if isinstance(window, dict):
                    window.update(cron="0 2 * * 6", timezone="Europe/Berlin")
        for item in value.values():
            real_windows(item)
