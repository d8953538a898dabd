"""The configuration and the value types every request body and parameter shares.

The OpenAPI document is generated from these, so a value the document allows is one the server
takes (Schemathesis's ``positive_data_acceptance`` holds the run to that).
What the database cannot hold is said here once, as bounds and patterns, rather than found out
by the database as a 422 that the document never promised.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

# Unknown fields are refused, and values are taken only in the type the OpenAPI document
# declares: `true` is not an integer, "5" is not a number (pydantic's lax mode took both, so
# schema-invalid bodies were accepted). JSON objects still fill nested models.
STRICT_INPUT = ConfigDict(extra="forbid", strict=True)

# Device reports come from agents that are upgraded on their own schedule: a newer agent may
# send fields this server does not know yet, and its report must still count. Types stay strict.
DEVICE_INPUT = ConfigDict(extra="ignore", strict=True)

# Ids and counts live in INTEGER columns: 32 bits on PostgreSQL. A larger id names nothing and
# a larger count cannot be stored, so the document bounds them and the server refuses beyond.
INT32_MAX = 2**31 - 1

# PostgreSQL text and JSONB cannot hold U+0000; free text excludes it in the document too.
NO_NUL = r"^[^\x00]*$"


def _whole_number(value: Any) -> Any:
    # JSON Schema's "integer" is any number without a fraction (2020-12: 3.0 is an integer),
    # and JSON itself does not tell 3 from 3.0; strict mode alone refuses 3.0. Booleans and
    # strings still reach the strict check and are refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE = BeforeValidator(_whole_number)
"""For an integer in a body: 3 or 3.0, never true or "3". It goes after the bounds
(``Annotated[int, Field(ge=…), WHOLE]``), so that the bounds stay in the document."""

Id = Annotated[int, Field(ge=1, le=INT32_MAX), WHOLE]
"""The id of a row, in a body."""

IdPath = Annotated[int, Path(ge=1, le=INT32_MAX)]
"""The id of a row, in the path."""

IdQuery = Annotated[int | None, Query(ge=1, le=INT32_MAX)]
"""An optional id filter, in the query."""

Text = Annotated[str, Field(pattern=NO_NUL)]
"""Free text that is stored: anything but NUL."""

TextQuery = Annotated[str | None, Query(max_length=500, pattern=NO_NUL)]
"""An optional text filter, in the query."""

# A name is stripped before it is stored, and a blank one is refused: at least one character
# that is not white space to Python's str.strip (which also strips \x1c-\x1f and \x85).
NAME_PATTERN = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
"""A name or identity: not blank, no NUL."""

Regex = Annotated[
    str,
    Field(
        max_length=500,
        pattern=NO_NUL,
        # JSON Schema's "regex" format; the server compiles it with RE2 and refuses (422) what
        # RE2 cannot run in linear time: backreferences and lookarounds.
        json_schema_extra={"format": "regex"},
    ),
]
"""A tag filter: a regular expression RE2 compiles."""


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Key = Annotated[str, AfterValidator(_no_nul)]
"""A key of a stored mapping: no NUL. A key type with a ``pattern`` would be documented as
``patternProperties``, which leaves other keys unconstrained; the mapping says ``keys(...)``."""


def keys(**constraints: Any) -> dict[str, Any]:
    """``json_schema_extra`` for a mapping of ``Key``s: what its keys are, as propertyNames."""
    return {"propertyNames": {"type": "string", "pattern": NO_NUL, **constraints}}


def leave_out(schema: dict[str, Any]) -> None:
    """Document an optional field as "give it or leave it out", without null: "exactly one of
    image and image_id" is then a plain ``required``. The server still reads null as absent."""
    variants = schema.pop("anyOf", None)
    schema.pop("default", None)  # null, which the field is no longer documented to take
    if variants:
        schema.update(next(v for v in variants if v != {"type": "null"}))
