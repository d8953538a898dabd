"""Docker-tag versions: parsing, ordering within a variant, ranges and bumps (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwarden.versions import (
    PreRelease,
    Version,
    VersionRange,
    is_minor_bump,
    is_patch_bump,
    newest,
    parse,
)


def v(tag: str) -> Version:
    parsed = parse(tag)
    assert parsed is not None, tag
    return parsed


@pytest.mark.parametrize(
    ("tag", "release", "pre", "variant"),
    [
        ("7.2", (7, 2), None, ""),
        ("7", (7,), None, ""),
        ("7.2.5-alpine", (7, 2, 5), None, "alpine"),
        ("1.25.3-bookworm", (1, 25, 3), None, "bookworm"),
        ("3.12.1-slim-bookworm", (3, 12, 1), None, "slim-bookworm"),
        ("7.2.5-alpine3.19", (7, 2, 5), None, "alpine3.19"),
        ("v2.0.0-rc1", (2, 0, 0), PreRelease("rc", 1), ""),
        ("V2.0.0-RC1", (2, 0, 0), PreRelease("rc", 1), ""),
        ("2.0.0rc10", (2, 0, 0), PreRelease("rc", 10), ""),
        ("2.0.0-rc.3", (2, 0, 0), PreRelease("rc", 3), ""),
        ("1.0.0-beta", (1, 0, 0), PreRelease("beta", 0), ""),
        ("1.0.0-beta.2", (1, 0, 0), PreRelease("beta", 2), ""),
        ("3.13.0a1", (3, 13, 0), PreRelease("alpha", 1), ""),
        ("3.13.0b2-slim", (3, 13, 0), PreRelease("beta", 2), "slim"),
        ("8.0-rc1-bookworm", (8, 0), PreRelease("rc", 1), "bookworm"),
        ("1.0-preview-bookworm", (1, 0), PreRelease("pre", 0), "bookworm"),
        ("1.0-dev", (1, 0), PreRelease("dev", 0), ""),
        ("20251017", (20251017,), None, ""),
        ("1.2.3.4", (1, 2, 3, 4), None, ""),
    ],
)
def test_parses_docker_tags_as_they_are_written(
    tag: str, release: tuple[int, ...], pre: PreRelease | None, variant: str
) -> None:
    parsed = v(tag)
    assert (parsed.release, parsed.pre, parsed.variant, parsed.tag) == (
        release,
        pre,
        variant,
        tag,
    )


@pytest.mark.parametrize(
    "tag", ["latest", "alpine", "stable-alpine", "", "v", "1.", ".1", "1..2", "1.2-", "1" * 14]
)
def test_tags_that_name_no_version_parse_to_none(tag: str) -> None:
    assert parse(tag) is None


@pytest.mark.parametrize(
    "suffix", ["alpine", "bookworm", "alpine3.19", "slim", "windowsservercore"]
)
def test_a_suffix_is_a_variant_never_a_prerelease(suffix: str) -> None:
    parsed = v(f"7.2.5-{suffix}")
    assert not parsed.is_prerelease
    assert parsed.variant == suffix


def test_a_v_prefix_is_the_same_version() -> None:
    assert v("v2.0.0") == v("2.0.0")
    assert v("v2.0.0-rc1") == v("2.0.0rc1") == v("2.0.0-rc.1")
    assert hash(v("v1.2")) == hash(v("1.2"))


def test_rc10_sorts_after_rc9_and_every_prerelease_before_its_release() -> None:
    ordered = ["2.0.0-dev", "2.0.0-alpha1", "2.0.0-beta2", "2.0.0-rc1", "2.0.0-rc9", "2.0.0-rc10"]
    ordered += ["2.0.0", "2.0.1", "2.1", "2.10.0", "10.0"]
    shuffled = list(reversed(ordered))
    assert [str(x.tag) for x in sorted(v(t) for t in shuffled)] == ordered


def test_release_components_compare_as_numbers_and_shorter_first() -> None:
    assert v("7.10") > v("7.9")
    assert v("7.2") < v("7.2.0") < v("7.2.1")
    assert v("7.2.5-alpine") < v("7.2.10-alpine")


def test_different_variants_have_no_order() -> None:
    with pytest.raises(TypeError, match="different variants"):
        _ = v("7.2.5-alpine") < v("7.2.6")
    assert v("7.2.5-alpine") != v("7.2.5")
    assert not v("7.2.5-alpine").comparable(v("7.2.5-bookworm"))


def test_newest_picks_within_a_variant() -> None:
    tags = [v(t) for t in ("7.2.4", "7.2.9-alpine", "7.2.5", "7.3.0-rc1", "7.2.6-alpine")]
    assert newest(tags, variant="") == v("7.3.0-rc1")
    assert newest(tags, variant="alpine") == v("7.2.9-alpine")
    assert newest(tags, variant="bookworm") is None


@pytest.mark.parametrize(
    ("candidate", "base", "patch", "minor"),
    [
        ("7.2.6", "7.2.5", True, True),
        ("7.2.10", "7.2.9", True, True),
        ("v7.2.6", "7.2.5", True, True),
        ("7.3.0", "7.2.5", False, True),
        ("8.0.0", "7.2.5", False, False),
        ("7.2.5", "7.2.5", False, False),
        ("7.2.4", "7.2.5", False, False),
        ("7.2.6-rc1", "7.2.5", False, False),
        ("7.2.6-alpine", "7.2.5-alpine", True, True),
        ("7.2.6-alpine", "7.2.5", False, False),
        ("7.2.6", "7.2.5-alpine", False, False),
        ("7.2", "7.2.5", False, False),
        ("7.2.1", "7.2", True, True),
    ],
)
def test_patch_and_minor_bumps(candidate: str, base: str, patch: bool, minor: bool) -> None:
    assert is_patch_bump(v(candidate), v(base)) is patch
    assert is_minor_bump(v(candidate), v(base)) is minor


@pytest.mark.parametrize(
    ("spec", "tag", "inside"),
    [
        (">=7.2, <8", "7.2.0", True),
        (">=7.2, <8", "7.9.9-alpine", True),
        (">=7.2, <8", "8.0.0", False),
        (">=7.2, <8", "8.0-rc1", False),
        (">=7.2, <8", "7.1.9", False),
        (">=8.0-rc1", "8.0-rc2", True),
        ("==7.2.5", "v7.2.5", True),
        ("=7.2.5", "7.2.6", False),
        ("7.2.5", "7.2.5", True),
        ("!=7.2.5,>7", "7.2.5", False),
        ("<=1.25.3", "1.25.3-bookworm", True),
    ],
)
def test_ranges(spec: str, tag: str, inside: bool) -> None:
    assert VersionRange.parse(spec).contains(v(tag)) is inside


@pytest.mark.parametrize("spec", ["", ">=", ">=latest", ">=7.2-alpine", "~>7", ">=7,"])
def test_bad_ranges_are_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(ValueError, match=r"range clause|plain version"):
        VersionRange.parse(spec)


# -- properties --------------------------------------------------------------------------------

components = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=4)
labels = st.sampled_from(["dev", "alpha", "beta", "pre", "rc"])
pres = st.none() | st.builds(PreRelease, labels, st.integers(min_value=0, max_value=200))
variants = st.sampled_from(["", "alpine", "bookworm", "slim-bookworm", "alpine3.19"])
versions = st.builds(lambda r, p, var: Version(tuple(r), p, var), components, pres, variants)


@given(versions)
def test_rendering_and_parsing_round_trip(version: Version) -> None:
    assert parse(str(version)) == version
    assert parse("v" + str(version)) == version


@given(versions)
def test_a_prerelease_sorts_before_its_final_release(version: Version) -> None:
    final = Version(version.release, None, version.variant)
    if version.is_prerelease:
        assert version < final
    else:
        assert version == final


@given(versions, versions, versions)
def test_order_is_total_and_transitive_within_a_variant(a: Version, b: Version, c: Version) -> None:
    b = Version(b.release, b.pre, a.variant)
    c = Version(c.release, c.pre, a.variant)
    assert (a < b) + (a == b) + (a > b) == 1
    if a <= b and b <= c:
        assert a <= c
    assert sorted([a, b, c]) == sorted([c, b, a])


@given(versions, st.integers(min_value=0, max_value=500))
def test_prerelease_numbers_compare_as_numbers(version: Version, n: int) -> None:
    left = Version(version.release, PreRelease("rc", n), version.variant)
    right = Version(version.release, PreRelease("rc", n + 1), version.variant)
    assert left < right
    assert parse(f"{'.'.join(map(str, version.release))}-rc{n + 1}") == Version(
        version.release, PreRelease("rc", n + 1)
    )


@given(versions, versions)
def test_versions_of_different_variants_never_compare(a: Version, b: Version) -> None:
    if a.variant != b.variant:
        with pytest.raises(TypeError):
            _ = a < b
        assert a != b


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789._-", max_size=30))
def test_any_tag_text_parses_or_is_refused_without_error(tag: str) -> None:
    parsed = parse(tag)
    if parsed is not None:
        assert parsed.tag == tag
        assert parse(str(parsed)) == parsed
