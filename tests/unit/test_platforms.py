"""One spelling per CPU, for the tags registries describe and the devices that run them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tagwarden.platforms import normalise_architecture
from tagwarden.rollouts import planner


@pytest.mark.parametrize(
    ("given", "variant", "expected"),
    [
        ("amd64", None, "amd64"),
        ("x86_64", None, "amd64"),
        ("arm64", None, "arm64"),
        ("arm64", "v8", "arm64"),
        ("aarch64", None, "arm64"),
        ("linux/arm64/v8", None, "arm64"),
        ("arm", "v7", "arm/v7"),
        ("armhf", None, "arm/v7"),
        ("linux/arm/v7", None, "arm/v7"),
        ("arm", "v6", "arm/v6"),
        ("ARM64", None, "arm64"),
    ],
)
def test_architecture_spellings_are_normalised(
    given: str, variant: str | None, expected: str
) -> None:
    assert normalise_architecture(given, variant) == expected


@pytest.mark.parametrize("device_arch", ["arm64", "aarch64", "linux/arm64/v8", "arm64/v8"])
def test_a_device_matches_the_tag_row_whatever_it_calls_its_cpu(device_arch: str) -> None:
    now = datetime(2025, 10, 17, tzinfo=UTC)
    device = planner.Candidate(
        uuid="d1", architecture=device_arch, registered_at=now, last_seen_at=now
    )
    variants = {"arm64": planner.Variant("arm64", "sha256:" + "a" * 64)}
    assert planner.skip_reason(device, variants, now=now, poll_interval_seconds=60) is None
