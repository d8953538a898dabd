"""Registry side: names outside the tag grammar never enter.

The grammar is one check (``references.is_tag``) for the API, the CLI and the registry clients;
the clients drop such names from a listing with one warning and never build a URL from one.
"""

from __future__ import annotations

import logging

import pytest

from tagwarden import references
from tagwarden.registry import MalformedResponse
from tagwarden.registry.base import TagNames
from tagwarden.testing import registry_harness

HOSTILE = ["<script>alert(1)</script>", "a" * 300, "bad\nname", "../../", "7.2.6\n", "", "-x"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_outside_the_grammar(name: str) -> None:
    assert not references.is_tag(name)
    error = references.tag_error(name)
    assert error is not None
    assert "\n" not in error  # the name is repr'd
    assert len(error) < 250  # and cut short


def test_other_references_are_full_matches_too() -> None:
    assert references.registry_error("ghcr.io\n") is not None
    assert references.namespace_error("library\n") is not None
    assert references.image_name_error("redis\n") is not None
    assert references.digest_error("sha256:" + "a" * 64 + "\n") is not None


def test_one_warning_per_listing_with_a_count_and_a_safe_example(
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = TagNames("acme/app")
    admitted = [n for n in ["1.0", *HOSTILE, "2.0"] if names.admit(n)]
    assert admitted == ["1.0", "2.0"]
    with caplog.at_level(logging.WARNING, logger="tagwarden.registry"):
        names.report()
        names.report()  # once
    [record] = caplog.records
    message = record.getMessage()
    assert f"dropped {len(HOSTILE)} tag name(s)" in message
    assert "'<script>alert(1)</script>'" in message
    assert "\n" not in message


async def test_the_hub_client_drops_hostile_names_and_requests_nothing_for_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with registry_harness() as h:
        h.fake.add_repository("library/redis", 0)
        h.fake.push_tag("library/redis", "7.2.5")
        for name in HOSTILE[:5]:
            h.clock.advance(60)
            h.fake.push_tag("library/redis", name)
        with caplog.at_level(logging.WARNING, logger="tagwarden.registry"):
            tags = [t async for t in h.hub().iter_tags("library/redis", {})]
        assert [t.name for t in tags] == ["7.2.5"]
        with pytest.raises(MalformedResponse, match="not a valid tag name"):
            await h.hub().resolve_tag("library/redis", "../../")
        assert [r.kind for r in h.fake.stats.records] == ["hub_tags"]
    assert sum("outside the tag grammar" in r.getMessage() for r in caplog.records) == 1


async def test_the_oci_client_drops_hostile_names_and_heads_only_the_good_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with registry_harness() as h:
        h.fake.add_repository("acme/app", 0)
        for name in ["7.2.5", *HOSTILE[:5]]:
            h.fake.push_tag("acme/app", name)
        with caplog.at_level(logging.WARNING, logger="tagwarden.registry"):
            tags = [t async for t in h.oci(page_size=2).iter_tags("acme/app", {})]
        assert [t.name for t in tags] == ["7.2.5"]
        heads = h.fake.stats.matching("oci_manifest", "HEAD")
        assert [r.path.rsplit("/", 1)[-1] for r in heads] == ["7.2.5"]
        with pytest.raises(MalformedResponse, match="not a valid tag name"):
            await h.oci().resolve_tag("acme/app", "<script>")
        assert len(h.fake.stats.matching("oci_manifest")) == 1
    # Several pages, one listing: one warning.
    assert sum("outside the tag grammar" in r.getMessage() for r in caplog.records) == 1
