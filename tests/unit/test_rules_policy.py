"""Which tags a rule approves, and from when (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tagwarden.rules.policy import check_pattern, due_at, matches, released_at

ACTIVATED = ["7.2.4", "7.2.5", "7.2.3-alpine", "latest"]


@pytest.mark.parametrize(
    ("kind", "pattern", "tag", "expected"),
    [
        ("patch", None, "7.2.6", True),
        ("patch", None, "v7.2.6", True),
        ("patch", None, "7.2.5", False),
        ("patch", None, "7.3.0", False),
        ("patch", None, "7.2.6-rc1", False),
        ("patch", None, "7.2.4-alpine", True),
        ("patch", None, "7.2.4-bookworm", False),  # nothing of that variant is activated
        ("patch", None, "latest", False),
        ("minor", None, "7.3.0", True),
        ("minor", None, "8.0.0", False),
        ("range", ">=7.2, <8", "7.9.1", True),
        ("range", ">=7.2, <8", "8.0.0", False),
        ("regex", r"7\.2\.\d+", "7.2.99", True),
        ("regex", r"7\.2\.\d+", "7.2.99-alpine", False),
    ],
)
def test_rule_matches(kind: str, pattern: str | None, tag: str, expected: bool) -> None:
    assert matches(kind, pattern, tag, ACTIVATED) is expected


def test_patch_and_minor_need_something_activated() -> None:
    assert not matches("patch", None, "1.0.1", [])
    assert not matches("minor", None, "1.1.0", ["latest"])


def test_age_counts_from_the_registry_date_then_first_seen_then_the_request() -> None:
    requested = datetime(2025, 10, 20, tzinfo=UTC)
    assert released_at({"last_updated": "2025-10-17T10:30:00Z"}, requested) == datetime(
        2025, 10, 17, 10, 30, tzinfo=UTC
    )
    assert released_at(
        {"last_updated": None, "first_seen": "2025-10-18T00:00:00+00:00"}, requested
    ) == datetime(2025, 10, 18, tzinfo=UTC)
    assert released_at({}, requested) == requested
    assert due_at(requested, 48) == datetime(2025, 10, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "pattern", "result"),
    [("range", ">= 7.2 ,<8", ">=7.2, <8"), ("regex", "^7", "^7"), ("patch", None, None)],
)
def test_patterns_are_checked_and_normalised(kind: str, pattern: str | None, result: str) -> None:
    assert check_pattern(kind, pattern) == result
