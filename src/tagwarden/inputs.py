"""The configuration every request body model shares."""

from __future__ import annotations

from pydantic import ConfigDict

# Unknown fields are refused, and values are taken only in the type the OpenAPI document
# declares: `true` is not an integer, "5" is not a number (pydantic's lax mode took both, so
# schema-invalid bodies were accepted — issue 10, item 11). JSON objects still fill nested models.
STRICT_INPUT = ConfigDict(extra="forbid", strict=True)

# Device reports come from agents that are upgraded on their own schedule: a newer agent may
# send fields this server does not know yet, and its report must still count. Types stay strict.
DEVICE_INPUT = ConfigDict(extra="ignore", strict=True)
