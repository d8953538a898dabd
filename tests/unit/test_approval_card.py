"""The approval card's view of evidence (pure): units, tones by policy, sizes over limits."""

from __future__ import annotations

import pytest

from tagwarden.evidence.listing import Policies
from tagwarden.evidence.schemas import EvidenceOut, SignaturePolicy, SizePolicy
from tagwarden.web.card import Tone, card, human_bytes, signature_view, signed_percent, size_view
from tests.card_data import GREW, SIGNED, MiB, signature, size


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (30 * MiB, "30.0 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**6, "3072.0 PiB"),
        (None, "—"),
        (True, "—"),
        (float("nan"), "—"),
        ("12", "—"),
    ],
)
def test_bytes_are_shown_in_binary_units(value: object, text: str) -> None:
    assert human_bytes(value) == text


def test_growth_carries_its_sign() -> None:
    assert signed_percent(4.2) == "+4.2 %"
    assert signed_percent(-3.0) == "-3.0 %"
    assert signed_percent(0.0) == "0.0 %"


def policies(signature_mode: str = "off", **size: object) -> Policies:
    return Policies(
        SignaturePolicy.model_validate({"mode": signature_mode}),
        SizePolicy.model_validate(size),
    )


@pytest.mark.parametrize(
    ("mode", "tone"), [("enforce", Tone.DANGER), ("warn", Tone.WARNING), ("off", Tone.MUTED)]
)
@pytest.mark.parametrize(
    ("found", "label"),
    [
        (signature("unsigned"), "unsigned"),
        (signature("invalid", reason="unknown_key"), "invalid: unknown_key"),
        (signature("error", reason="registry answered 500"), "error: registry answered 500"),
    ],
)
def test_a_signature_that_did_not_verify_takes_the_policys_colour(
    mode: str, tone: Tone, found: object, label: str
) -> None:
    view = signature_view(EvidenceOut(signature=found), policies(mode))  # type: ignore[arg-type]
    assert (view.label, view.tone) == (label, tone)


@pytest.mark.parametrize("mode", ["enforce", "warn", "off"])
def test_a_verified_signature_names_its_signers_in_green(mode: str) -> None:
    view = signature_view(EvidenceOut(signature=SIGNED), policies(mode))
    assert (view.label, view.tone, view.failure) == ("signed by release-key", Tone.OK, None)


def test_evidence_not_collected_is_said_so() -> None:
    shown = card({}, EvidenceOut(), policies("enforce"))
    assert (shown.signature.label, shown.signature.tone) == ("not collected yet", Tone.MUTED)
    assert shown.size is None
    assert shown.signature.status is None


def test_sizes_growth_new_bytes_and_previous_tag() -> None:
    view = size_view(EvidenceOut(size=GREW), policies())
    assert view is not None
    rows = {p.architecture: (p.size, p.growth, p.new_bytes, p.over) for p in view.platforms}
    assert rows == {
        "amd64": ("30.0 MiB", "+4.2 %", "1.0 MiB", False),
        "arm64": ("28.5 MiB", "+12.5 %", "3.0 MiB", False),
    }
    assert (view.previous_tag, view.tone, view.failures) == ("7.2.4", Tone.OK, ())


def test_a_platform_over_the_size_policy_is_marked_in_its_colour() -> None:
    grew = size_view(EvidenceOut(size=GREW), policies(mode="warn", max_growth_percent=10.0))
    assert grew is not None
    assert [p.architecture for p in grew.platforms if p.over] == ["arm64"]
    assert grew.tone == Tone.WARNING
    big = size_view(EvidenceOut(size=GREW), policies(mode="enforce", max_bytes=29 * MiB))
    assert big is not None
    assert [p.architecture for p in big.platforms if p.over] == ["amd64"]
    assert big.tone == Tone.DANGER
    off = size_view(EvidenceOut(size=GREW), policies(mode="off", max_bytes=1))
    assert off is not None
    assert not any(p.over for p in off.platforms)


def test_a_first_tag_has_no_growth_and_no_previous() -> None:
    view = size_view(EvidenceOut(size=size({"amd64": 100}, previous_tag=None)), policies())
    assert view is not None
    assert [(p.size, p.growth, p.new_bytes) for p in view.platforms] == [("100 B", None, None)]
    assert view.previous_tag is None


def test_a_repush_names_the_platforms_that_changed() -> None:
    shown = card(
        {
            "reason": "digest_changed",
            "old_digest": "sha256:" + "1" * 64,
            "changed_platforms": ["arm64", 3],
            "also_tagged": ["latest"],
        },
        EvidenceOut(),
        policies(),
    )
    assert shown.repushed
    assert shown.changed_platforms == ("arm64",)
    assert shown.also_tagged == ("latest",)
    assert shown.old_digest == "sha256:" + "1" * 64
    assert not card({}, EvidenceOut(), policies()).repushed
