"""The SBOM package diff between the previous approved tag and the one under review."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tagwarden.vulnerabilities.diff import packages_diff
from tagwarden.vulnerabilities.service import packages_of


def pkg(name: str, version: str, ecosystem: str | None = "Alpine:v3.20") -> dict[str, Any]:
    return {"name": name, "version": version, "ecosystem": ecosystem, "purl": None}


def test_added_removed_and_upgraded_are_told_apart() -> None:
    previous = [pkg("musl", "1.2.4-r2"), pkg("busybox", "1.36.1-r2"), pkg("zlib", "1.3-r0")]
    current = [pkg("musl", "1.2.5-r0"), pkg("busybox", "1.36.1-r2"), pkg("curl", "8.9.1-r0")]
    assert packages_diff(previous, current) == {
        "added": [{"name": "curl", "ecosystem": "Alpine:v3.20", "version": "8.9.1-r0"}],
        "removed": [{"name": "zlib", "ecosystem": "Alpine:v3.20", "version": "1.3-r0"}],
        "upgraded": [
            {
                "name": "musl",
                "ecosystem": "Alpine:v3.20",
                "previous": "1.2.4-r2",
                "current": "1.2.5-r0",
            }
        ],
    }


def test_the_same_name_in_another_ecosystem_is_another_package() -> None:
    diff = packages_diff([pkg("openssl", "3.0.11", "Debian:12")], [pkg("openssl", "3.1.4")])
    assert [p["ecosystem"] for p in diff["added"]] == ["Alpine:v3.20"]
    assert [p["ecosystem"] for p in diff["removed"]] == ["Debian:12"]
    assert diff["upgraded"] == []


def test_with_no_previous_tag_everything_is_added() -> None:
    diff = packages_diff([], [pkg("a", "1"), pkg("b", "2", None)])
    assert [(p["name"], p["ecosystem"]) for p in diff["added"]] == [
        ("b", None),
        ("a", "Alpine:v3.20"),
    ]
    assert diff["removed"] == diff["upgraded"] == []


packages = st.lists(
    st.builds(
        pkg,
        st.sampled_from(["musl", "busybox", "zlib", "curl", "openssl"]),
        st.sampled_from(["1.0", "1.1", "2.0-r1", "2.0-r10"]),
        st.sampled_from(["Alpine:v3.20", "Debian:12", None]),
    ),
    max_size=12,
)


def _keys(items: list[dict[str, Any]]) -> set[tuple[Any, str]]:
    return {(p["ecosystem"], p["name"]) for p in items}


@given(packages)
def test_a_list_compared_with_itself_has_no_changes(items: list[dict[str, Any]]) -> None:
    assert packages_diff(items, items) == {"added": [], "removed": [], "upgraded": []}


@given(packages, packages)
def test_every_package_is_in_exactly_one_place(
    previous: list[dict[str, Any]], current: list[dict[str, Any]]
) -> None:
    diff = packages_diff(previous, current)
    added, removed = _keys(diff["added"]), _keys(diff["removed"])
    upgraded = _keys([dict(u) for u in diff["upgraded"]])
    assert added == _keys(current) - _keys(previous)
    assert removed == _keys(previous) - _keys(current)
    assert upgraded <= _keys(previous) & _keys(current)
    assert not (added & upgraded)
    assert not (removed & upgraded)
    # Swapping the sides swaps added and removed, and keeps who was upgraded.
    back = packages_diff(current, previous)
    assert _keys(back["added"]) == removed
    assert _keys(back["removed"]) == added
    assert _keys([dict(u) for u in back["upgraded"]]) == upgraded
    for change in diff["upgraded"]:
        assert change["previous"] != change["current"]


def test_the_evidence_pairs_platforms_by_architecture() -> None:
    arches = {"sha256:a1": "amd64", "sha256:b1": "arm64", "sha256:a0": "amd64"}
    current = {"sha256:a1": [pkg("musl", "1.2.5-r0")], "sha256:b1": [pkg("musl", "1.2.4-r2")]}
    found = packages_of(current, {"sha256:a0": [pkg("musl", "1.2.4-r2")]}, arches)
    assert isinstance(found, dict)
    assert found["amd64"].model_dump()["upgraded"] == [
        {"name": "musl", "ecosystem": "Alpine:v3.20", "previous": "1.2.4-r2", "current": "1.2.5-r0"}
    ]
    # arm64 is new in this tag: everything on it is added.
    assert [p.name for p in found["arm64"].added] == ["musl"]
    # One platform each: a single diff; a previous tag with no SBOM to compare: none.
    single = packages_of({"sha256:a1": [pkg("musl", "1.2.5-r0")]}, None, {})
    assert single is not None
    assert not isinstance(single, dict)
    assert [p.version for p in single.added] == ["1.2.5-r0"]
    assert packages_of(current, {}, arches) is None
    assert packages_of({}, None, arches) is None
