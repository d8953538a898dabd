"""Registry value types: architecture normalisation, attestation filtering, timestamps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from tagwarden.registry.base import (
    MalformedResponse,
    Platform,
    RemoteTag,
    normalise_architecture,
    parse_timestamp,
    platforms_from,
)
from tagwarden.registry.manifests import meaningful_time


@pytest.mark.parametrize(
    ("architecture", "variant", "expected"),
    [
        ("amd64", None, "amd64"),
        ("arm64", "v8", "arm64"),
        ("arm64", None, "arm64"),
        ("arm64/v8", None, "arm64"),
        ("aarch64", None, "arm64"),
        ("x86_64", None, "amd64"),
        ("arm", "v7", "arm/v7"),
        ("arm", "v6", "arm/v6"),
        ("armhf", None, "arm/v7"),
        ("ARM", "V7", "arm/v7"),
        ("arm", None, "arm"),  # no variant given: do not guess one
        ("amd64", "v3", "amd64/v3"),  # a real micro-architecture level, kept
        ("ppc64le", None, "ppc64le"),
    ],
)
def test_architectures_are_normalised(
    architecture: str, variant: str | None, expected: str
) -> None:
    assert normalise_architecture(architecture, variant) == expected


def test_attestation_entries_are_not_platforms() -> None:
    platforms = platforms_from(
        [
            ("amd64", "linux", None, "sha256:a", 10),
            ("arm64", "linux", "v8", "sha256:b", 11),
            ("unknown", "unknown", None, "sha256:att", 1),
        ]
    )
    assert [p.architecture for p in platforms] == ["amd64", "arm64"]
    assert Platform("arm64", "linux", "sha256:b", 11) in platforms


def test_remote_tag_architectures_and_platform_digests() -> None:
    tag = RemoteTag(
        name="7.2",
        digest="sha256:index",
        last_updated=None,
        platforms=(
            Platform("arm/v7", "linux", "sha256:armv7", None),
            Platform("amd64", "windows", "sha256:win", None),
            Platform("amd64", "linux", "sha256:linux-amd64", None),
            Platform("arm64", "linux", None, None),
        ),
        resolved=True,
    )
    assert tag.architectures == ["amd64", "arm/v7", "arm64"]
    # Linux wins over Windows for the same architecture; unknown digests are left out.
    assert tag.platform_digests == {"amd64": "sha256:linux-amd64", "arm/v7": "sha256:armv7"}


def test_values_are_frozen() -> None:
    tag = RemoteTag("a", None, None, (), resolved=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tag.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-09-01T16:03:27Z", datetime(2021, 9, 1, 16, 3, 27, tzinfo=UTC)),
        ("2024-09-30T12:03:00.807746Z", datetime(2024, 9, 30, 12, 3, 0, 807746, tzinfo=UTC)),
        ("2025-08-29T09:30:26.034071986Z", datetime(2025, 8, 29, 9, 30, 26, 34071, tzinfo=UTC)),
        ("2025-08-29T11:30:26+02:00", datetime(2025, 8, 29, 9, 30, 26, tzinfo=UTC)),
        ("2025-08-29T09:30:26", datetime(2025, 8, 29, 9, 30, 26, tzinfo=UTC)),
    ],
)
def test_timestamps_parse_to_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() is not None


def test_missing_timestamp_is_none_and_junk_is_malformed() -> None:
    assert parse_timestamp(None) is None
    assert parse_timestamp("") is None
    with pytest.raises(MalformedResponse):
        parse_timestamp("yesterday")
    with pytest.raises(MalformedResponse):
        parse_timestamp(1700000000)


def test_reproducible_build_epoch_is_not_a_creation_time() -> None:
    assert meaningful_time("1970-01-01T00:00:00Z") is None
    assert meaningful_time("0001-01-01T00:00:00Z") is None
    assert meaningful_time("2015-10-31T22:22:56.015925234Z") == datetime(
        2015, 10, 31, 22, 22, 56, 15925, tzinfo=UTC
    )
