"""The monitor's plan of what becomes an approval request, as a pure function: given what the
registry lists now and what was seen before, which tags are new, which changed, and which are
asked about. Properties over generated listings, then the cases the properties do not name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tagwarden.monitor.discovery import KnownTag, TagFilter, plan
from tagwarden.registry.base import Platform, RemoteTag

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
EVERYTHING = TagFilter(None, None)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def tag(name: str, n: int, *, age_days: int = 0, archs: tuple[str, ...] = ("amd64",)) -> RemoteTag:
    platforms = tuple(
        Platform(a, "linux", digest(1000 + n * 10 + i), None) for i, a in enumerate(archs)
    )
    return RemoteTag(name, digest(n), EPOCH - timedelta(days=age_days), platforms, resolved=True)


def seen(t: RemoteTag) -> KnownTag:
    return KnownTag(t.name, t.digest, dict(t.platform_digests), EPOCH)


names = st.text(alphabet="abc123.-", min_size=1, max_size=6)
listings = st.lists(
    st.tuples(names, st.integers(0, 5), st.integers(0, 30), st.booleans()),
    max_size=12,
    unique_by=lambda row: row[0],
).map(
    lambda rows: [
        tag(name, n, age_days=age, archs=("amd64", "arm64") if deployable else ())
        for name, n, age, deployable in rows
    ]
)


@given(listings, st.sampled_from(["latest", "all"]))
def test_a_first_scan_asks_about_one_tag_at_most_the_newest_deployable(
    remote: list[RemoteTag], policy: str
) -> None:
    the_plan = plan(remote, {}, policy=policy, wanted=EVERYTHING)
    assert {t.name for t in the_plan.new} == {t.name for t in remote}
    deployable = [t for t in remote if t.architectures]
    if not deployable:
        assert the_plan.candidates == []
        return
    (only,) = the_plan.candidates
    assert only.reason == "new"
    assert only.tag.last_updated == max(t.last_updated or EPOCH for t in deployable)


@given(listings, st.sampled_from(["latest", "all"]))
def test_planning_again_what_was_just_seen_asks_nothing(
    remote: list[RemoteTag], policy: str
) -> None:
    known = {t.name: seen(t) for t in remote}
    tracked = set(known)
    again = plan(remote, known, policy=policy, wanted=EVERYTHING, tracked=tracked)
    assert again.candidates == []
    assert again.new == []
    assert again.changed == []


@given(listings, listings)
def test_with_policy_all_every_new_deployable_tag_is_asked_about_and_only_those(
    before: list[RemoteTag], after: list[RemoteTag]
) -> None:
    known = {t.name: seen(t) for t in before}
    if not known:
        return  # a first scan is the property above
    the_plan = plan(after, known, policy="all", wanted=EVERYTHING)
    new = [c.tag.name for c in the_plan.candidates if c.reason == "new"]
    assert set(new) == {t.name for t in after if t.name not in known and t.architectures}


@given(listings, listings, st.sets(names))
def test_a_changed_digest_is_asked_about_only_for_a_tracked_tag(
    before: list[RemoteTag], after: list[RemoteTag], tracked: set[str]
) -> None:
    known = {t.name: seen(t) for t in before}
    the_plan = plan(after, known, policy="latest", wanted=EVERYTHING, tracked=tracked)
    for candidate in the_plan.candidates:
        if candidate.reason == "digest_changed":
            assert candidate.tag.name in tracked
            assert candidate.old_digest == known[candidate.tag.name].digest
            assert candidate.old_digest != candidate.tag.digest


@given(listings)
def test_a_filtered_out_tag_is_never_new_changed_or_asked_about(remote: list[RemoteTag]) -> None:
    wanted = TagFilter(None, r"^a")
    the_plan = plan(remote, {}, policy="all", wanted=wanted)
    listed = [t.name for t in the_plan.new] + [c.tag.name for c in the_plan.candidates]
    assert not any(name.startswith("a") for name in listed)


def test_a_re_push_names_the_platforms_whose_manifest_changed() -> None:
    old = tag("7.2", 1, archs=("amd64", "arm64"))
    new = RemoteTag(
        "7.2",
        digest(2),
        EPOCH,
        (
            Platform("amd64", "linux", old.platform_digests["amd64"], None),
            Platform("arm64", "linux", digest(99), None),
            Platform("riscv64", "linux", digest(98), None),
        ),
        resolved=True,
    )
    the_plan = plan([new], {"7.2": seen(old)}, policy="latest", wanted=EVERYTHING, tracked={"7.2"})
    (candidate,) = the_plan.candidates
    assert candidate.reason == "digest_changed"
    assert candidate.changed_platforms == ("arm64", "riscv64")


def test_a_re_push_of_an_untracked_tag_is_recorded_as_changed_but_not_asked_about() -> None:
    old, new = tag("7.2", 1), tag("7.2", 2)
    the_plan = plan([new], {"7.2": seen(old)}, policy="latest", wanted=EVERYTHING)
    assert [t.name for t in the_plan.changed] == ["7.2"]
    assert the_plan.candidates == []
