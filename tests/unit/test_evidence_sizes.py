"""Sizes as evidence, as pure functions: compressed, new and download bytes, growth, policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwarden.evidence import sizes
from tagwarden.evidence.schemas import PolicyMode, SizePolicy
from tagwarden.evidence.sizes import Previous
from tagwarden.registry.base import MalformedResponse
from tagwarden.registry.manifests import Blob, ImageBlobs, parse_image_blobs

NOW = datetime(2026, 12, 2, 1, 30, tzinfo=UTC)


def blob(name: str, size: int) -> Blob:
    return Blob(f"sha256:{name}", size)


def image(config: Blob, *layers: Blob) -> ImageBlobs:
    return ImageBlobs(config, tuple(layers))


BASE, LIB, APP_V1, APP_V2 = (
    blob("base", 3000),
    blob("lib", 500),
    blob("app1", 100),
    blob("app2", 250),
)
V1 = image(blob("cfg1", 7), BASE, LIB, APP_V1)
V2 = image(blob("cfg2", 8), BASE, LIB, APP_V2)


def manifest(config: Blob, *layers: Blob) -> dict[str, object]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "x", "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": "y", "digest": b.digest, "size": b.size} for b in layers],
    }


def test_compressed_bytes_are_config_plus_every_layer_as_listed() -> None:
    parsed = parse_image_blobs(manifest(blob("c", 10), BASE, BASE, APP_V1))
    assert parsed.compressed_bytes == 10 + 3000 + 3000 + 100
    # A layer listed twice is downloaded once.
    assert sum(parsed.distinct().values()) == 10 + 3000 + 100


@pytest.mark.parametrize(
    "body",
    [
        {"config": {"digest": "sha256:c"}, "layers": []},
        {"config": {"digest": "sha256:c", "size": True}, "layers": []},
        {"config": {"digest": "sha256:c", "size": -1}, "layers": []},
        {"config": {"size": 3}, "layers": []},
        {"config": {"digest": "sha256:c", "size": 3}, "layers": {"a": 1}},
    ],
)
def test_a_manifest_without_usable_sizes_is_malformed(body: dict[str, object]) -> None:
    with pytest.raises(MalformedResponse):
        parse_image_blobs(body)


def test_growth_and_new_bytes_count_only_what_the_previous_tag_lacked() -> None:
    previous = sizes.previous_from(
        "1.0",
        "sha256:v1",
        sizes.size_evidence({"amd64": V1}, previous=None, checked_at=NOW),
    )
    evidence = sizes.size_evidence({"amd64": V2, "arm64": V1}, previous=previous, checked_at=NOW)
    assert evidence["platforms"] == {"amd64": 3758, "arm64": 3607}
    assert evidence["previous"] == {"tag": "1.0", "digest": "sha256:v1"}
    # (3758 - 3607) / 3607 = 4.186… %
    assert evidence["growth_percent"] == {"amd64": 4.2}
    # Only the new config and the new app layer: base and lib are shared.
    assert evidence["new_bytes"] == {"amd64": 8 + 250}
    # arm64 had no previous build to compare with.
    assert "arm64" not in evidence["growth_percent"]
    assert evidence["source"] == "manifests"
    assert sizes.blobs_of(evidence) == {"amd64": V2, "arm64": V1}


def test_hub_sizes_stand_where_no_manifest_was_read() -> None:
    previous = Previous("1.0", "sha256:v1", {"amd64": 1000}, {})
    evidence = sizes.size_evidence({}, hub_sizes={"amd64": 1100}, previous=previous, checked_at=NOW)
    assert evidence["platforms"] == {"amd64": 1100}
    assert evidence["growth_percent"] == {"amd64": 10.0}
    assert evidence["new_bytes"] == {}
    assert evidence["blobs"] == {}
    assert evidence["source"] == "hub"


def test_download_bytes_are_the_blobs_the_device_lacks_or_all_when_unknown() -> None:
    held = frozenset(V1.distinct())
    assert sizes.download_bytes(V2, held=held, target_size=None) == 258
    assert sizes.download_bytes(V2, held=None, target_size=None) == 3758
    assert sizes.download_bytes(V1, held=held, target_size=None) == 0
    assert sizes.download_bytes(None, held=held, target_size=1234) == 1234
    assert sizes.download_bytes(None, held=None, target_size=None) is None


BLOBS = st.lists(
    st.builds(Blob, st.sampled_from([f"sha256:{i}" for i in range(8)]), st.integers(0, 10**9)),
    min_size=1,
    max_size=10,
)


def consistent(blobs: list[Blob]) -> ImageBlobs:
    """One size per digest, as content addressing guarantees."""
    by_digest = {b.digest: b.size for b in blobs}
    fixed = [Blob(b.digest, by_digest[b.digest]) for b in blobs]
    return ImageBlobs(fixed[0], tuple(fixed[1:]))


@given(BLOBS, BLOBS)
def test_new_bytes_are_bounded_and_vanish_against_the_same_image(
    one: list[Blob], other: list[Blob]
) -> None:
    current, before = consistent(one), consistent(one + other)
    new = sizes.unheld_bytes(current, frozenset(before.distinct()))
    assert new == 0  # everything the current image has, the previous one held
    fresh = sizes.unheld_bytes(consistent(other), frozenset(current.distinct()))
    assert 0 <= fresh <= sum(consistent(other).distinct().values())
    assert sizes.unheld_bytes(current, frozenset()) == sum(current.distinct().values())


@given(st.integers(1, 10**12), st.integers(0, 10**12))
def test_growth_has_the_sign_of_the_change(before: int, now: int) -> None:
    growth = sizes.growth_percent({"amd64": now}, {"amd64": before})["amd64"]
    assert (growth > 0) <= (now > before)
    assert (growth < 0) <= (now < before)
    assert growth == round((now - before) * 100.0 / before, 1)


def test_policy_checks_max_bytes_and_growth_and_says_why() -> None:
    evidence = {"platforms": {"amd64": 2000, "arm64": 900}, "growth_percent": {"amd64": 25.0}}
    policy = SizePolicy(mode=PolicyMode.ENFORCE, max_growth_percent=20, max_bytes=1000)
    assert sizes.size_failures(evidence, policy) == [
        "amd64: 2000 bytes, more than max_bytes 1000",
        "amd64: grew 25.0 %, more than max_growth_percent 20",
    ]
    assert sizes.size_failures(evidence, SizePolicy(mode=PolicyMode.ENFORCE, max_bytes=2000)) == []
    assert sizes.size_failures(evidence, SizePolicy(mode=PolicyMode.OFF, max_bytes=1)) == []


def test_a_policy_with_a_limit_fails_without_evidence() -> None:
    policy = SizePolicy(mode=PolicyMode.WARN, max_bytes=1)
    assert sizes.size_failures(None, policy) == ["no size evidence"]
    assert sizes.size_failures({"platforms": {}}, policy) == ["no size evidence"]
    assert sizes.size_failures(None, SizePolicy(mode=PolicyMode.ENFORCE)) == []


def test_growth_event_threshold_is_the_policys_or_twenty_percent() -> None:
    evidence = {"growth_percent": {"amd64": 21.0, "arm64": 12.0}}
    assert sizes.grown(evidence, sizes.growth_event_percent(SizePolicy())) == {"amd64": 21.0}
    assert sizes.grown(evidence, sizes.growth_event_percent(SizePolicy(max_growth_percent=10))) == {
        "amd64": 21.0,
        "arm64": 12.0,
    }


def test_device_download_bytes_find_the_current_image_by_either_digest() -> None:
    stored = {
        "sha256:v1": sizes.size_evidence(
            {"amd64": V1}, manifests={"amd64": "sha256:v1-amd64"}, previous=None, checked_at=NOW
        ),
    }
    target = sizes.size_evidence({"amd64": V2}, previous=None, checked_at=NOW)
    known = sizes.blobs_by_digest(stored)
    assert sizes.device_download_bytes("amd64", "sha256:v1", target, known) == 258
    assert sizes.device_download_bytes("amd64", "sha256:v1-amd64", target, known) == 258
    # A device whose image is not known downloads everything, each blob once.
    assert sizes.device_download_bytes("amd64", None, target, known) == 3758
    assert sizes.device_download_bytes("amd64", "sha256:other", target, known) == 3758
    assert sizes.device_download_bytes("arm64", "sha256:v1", target, known) is None
    hub = {"platforms": {"amd64": 999}, "blobs": {}}
    assert sizes.device_download_bytes("amd64", "sha256:v1", hub, known) == 999
