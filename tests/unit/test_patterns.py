"""Tag filters and rule patterns run by RE2: same matching as before, in linear time."""

from __future__ import annotations

import time

import pytest

from tagwarden import patterns
from tagwarden.catalogue.schemas import ImageCreate
from tagwarden.monitor.discovery import TagFilter
from tagwarden.rules import policy


def test_search_and_fullmatch_keep_the_semantics_the_code_had() -> None:
    # tag_include / tag_exclude are searched (unanchored); a regex rule must match the whole tag.
    assert patterns.search("alpine", "7.2.5-alpine")
    assert not patterns.fullmatch("alpine", "7.2.5-alpine")
    assert patterns.fullmatch(r"7\.2\.\d+(-alpine)?", "7.2.5-alpine")
    assert patterns.search(r"^7\.", "7.2.5")
    assert not patterns.search(r"^7\.", "17.2")
    wanted = TagFilter(r"^\d+\.\d+", "rc|beta")
    assert [t for t in ("7.2", "7.3-rc1", "latest", "8.0-beta") if wanted(t)] == ["7.2"]
    assert policy.matches("regex", r"1\.25\.\d+-bookworm", "1.25.3-bookworm", [])
    assert not policy.matches("regex", r"1\.25\.\d+", "1.25.3-bookworm", [])


def test_a_catastrophic_pattern_answers_a_30_character_tag_at_once() -> None:
    hostile = "a" * 29 + "!"
    started = time.perf_counter()
    assert not TagFilter("(a+)+$", None)(hostile)
    assert not policy.matches("regex", "(a+)+", hostile, [])
    assert time.perf_counter() - started < 1.0  # Python's re needed 37 s, doubling per character


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "invalid escape sequence"),
        ("(?=a)b", "invalid perl operator"),
        ("(?<!a)b", "invalid perl operator"),
        ("[", "missing ]"),
        ("((a{100}){100}){100}", "invalid repetition size"),
    ],
)
def test_what_re2_cannot_run_is_refused_saying_why(pattern: str, reason: str) -> None:
    with pytest.raises(patterns.PatternError, match=reason):
        patterns.check(pattern)
    assert reason in (patterns.error_of(pattern) or "")
    with pytest.raises(patterns.PatternError):
        TagFilter(pattern, None)  # a stored pattern: the check of that image fails with this
    with pytest.raises(ValueError, match=reason):
        policy.check_pattern("regex", pattern)
    with pytest.raises(ValueError, match=reason):
        ImageCreate(image_name="redis", tag_exclude=pattern)


def test_a_pattern_past_the_memory_budget_is_refused() -> None:
    # Every Unicode letter, a thousand times: past RE2's max_mem, refused when compiled.
    assert "pattern too large" in (patterns.error_of(r"\pL{1000}") or "")
    assert patterns.error_of(r"[a-z]{1,50}\.\d+") is None
