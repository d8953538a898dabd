"""Registry webhook bodies read as pushes (pure), on the registries' own published samples
(../shared/fixtures/realworld/webhooks) and on bodies built from their documented shapes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tagwarden.webhooks.payloads import Push, distribution, is_digest_push

DIGEST = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"


def _webhooks() -> Path | None:
    """``../shared/fixtures/realworld/webhooks`` of the checkout (a worktree sits deeper)."""
    for parent in Path(__file__).resolve().parents[2].parents:
        candidate = parent / "shared" / "fixtures" / "realworld" / "webhooks"
        if candidate.is_dir():
            return candidate
    return None


WEBHOOKS = _webhooks()
needs_samples = pytest.mark.skipif(
    WEBHOOKS is None, reason="../shared/fixtures/realworld is absent: real webhook bodies untested"
)


def sample(name: str) -> Any:
    assert WEBHOOKS is not None
    return json.loads((WEBHOOKS / name).read_text())


@needs_samples
@pytest.mark.parametrize(
    "name", ["harbor_docs_push_artifact.json", "harbor_docs_cloudevents_pushed.json"]
)
def test_harbor_samples_pushed_by_digest_are_no_tag_push(name: str) -> None:
    body = sample(name)
    # The published samples name the digest where a tag would be.
    resources = (body.get("event_data") or body["data"])["resources"]
    assert resources[0]["tag"] == resources[0]["digest"]
    assert distribution(body) == []


@needs_samples
def test_harbor_sample_with_a_real_tag_is_a_tag_push() -> None:
    body = copy.deepcopy(sample("harbor_docs_push_artifact.json"))
    resource = body["event_data"]["resources"][0]
    resource["tag"] = "3.19"
    resource["resource_url"] = "localhost/harbor/alpine:3.19"
    assert distribution(body) == [Push("localhost", "harbor/alpine", "3.19", DIGEST)]


@needs_samples
def test_captured_distribution_tag_push_is_still_a_tag_push() -> None:
    pushes = distribution(sample("captured_distribution_2.8_push.json"))
    assert [(p.repository, p.tag) for p in pushes] == [("demo/app", "1.3.0")]


def test_distribution_event_naming_the_digest_as_its_tag_is_ignored() -> None:
    event = {
        "action": "push",
        "target": {"repository": "demo/app", "digest": DIGEST, "tag": DIGEST},
        "request": {"host": "127.0.0.1:5000"},
    }
    assert distribution({"events": [event]}) == []


def test_a_digest_of_another_algorithm_is_a_digest_push_too() -> None:
    assert is_digest_push("sha512:" + "ab" * 64, None)
    assert is_digest_push(DIGEST, DIGEST)
    assert not is_digest_push("latest", DIGEST)
    assert not is_digest_push("1.2.3", None)
