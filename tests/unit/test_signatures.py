"""Checking cosign signature layers and the signature policy (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from tagwarden.evidence.policy import signature_failure
from tagwarden.evidence.schemas import SignatureEvidence, SignaturePolicy, SignatureStatus
from tagwarden.evidence.signatures import (
    SIGNATURE_ANNOTATION,
    LoadedKey,
    Outcome,
    SignatureLayer,
    check_layer,
    judge,
    load_public_key,
    referrers_tag,
    signature_tag,
)
from tagwarden.references import is_signature_tag
from tests.signing import new_key, payload, public_pem, sign, signature_layer

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
WHEN = datetime(2026, 12, 2, tzinfo=UTC)


def keys(**named: ec.EllipticCurvePrivateKey) -> dict[str, LoadedKey]:
    return {name: load_public_key(public_pem(k)) for name, k in named.items()}


def layer(key: ec.EllipticCurvePrivateKey, digest: str = DIGEST, **kw: bool) -> SignatureLayer:
    made = signature_layer(key, digest, "example.com/app", **kw)
    return SignatureLayer(made.blob, made.annotations)


def test_cosign_tags_for_a_digest() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    assert referrers_tag(DIGEST) == "sha256-" + "ab" * 32


@pytest.mark.parametrize("suffix", ["", ".sig", ".att", ".sbom"])
def test_artifact_tags_are_recognised(suffix: str) -> None:
    assert is_signature_tag("sha256-" + "0f" * 32 + suffix)


@pytest.mark.parametrize(
    "tag",
    ["1.0.0", "latest", "sha256-abc.sig", "sha256-" + "0f" * 32 + ".tar", "sha256-" + "G" * 64],
)
def test_image_tags_are_not_artifact_tags(tag: str) -> None:
    assert not is_signature_tag(tag)


@given(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True))
def test_only_digest_shaped_names_are_artifact_tags(tag: str) -> None:
    # No tag short of 64 hex digits after "sha256-" can be one: every real version tag passes.
    assert not is_signature_tag(tag)


@given(st.binary(min_size=32, max_size=32), st.sampled_from(["", ".sig", ".att", ".sbom"]))
def test_every_digest_names_its_artifact_tags(raw: bytes, suffix: str) -> None:
    assert is_signature_tag(referrers_tag("sha256:" + raw.hex()) + suffix)


def test_a_good_signature_verifies_and_names_its_signer() -> None:
    key = new_key()
    checked = check_layer(layer(key), DIGEST, keys(release=key))
    assert checked.outcome is Outcome.VERIFIED
    assert checked.signers == ("release",)
    assert checked.signed_digest == DIGEST


def test_a_signature_of_another_digest_is_a_mismatch_even_when_genuine() -> None:
    key = new_key()
    checked = check_layer(layer(key, OTHER), DIGEST, keys(release=key))
    assert (checked.outcome, checked.signed_digest) == (Outcome.DIGEST_MISMATCH, OTHER)


def test_a_tampered_payload_is_a_bad_signature() -> None:
    key = new_key()
    checked = check_layer(layer(key, tamper=True), DIGEST, keys(release=key))
    assert checked.outcome is Outcome.BAD_SIGNATURE


def test_a_key_nobody_registered_is_unknown() -> None:
    checked = check_layer(layer(new_key()), DIGEST, keys(release=new_key()))
    assert checked.outcome is Outcome.UNKNOWN_KEY


def test_without_a_bundle_an_unverifiable_signature_counts_as_an_unknown_key() -> None:
    key = new_key()
    signed = payload(DIGEST, "example.com/app")
    bare = SignatureLayer(signed + b" ", {SIGNATURE_ANNOTATION: sign(key, signed)})
    assert check_layer(bare, DIGEST, keys(release=key)).outcome is Outcome.UNKNOWN_KEY


def test_a_signature_that_is_not_base64_is_bad() -> None:
    bad = SignatureLayer(payload(DIGEST, "x"), {SIGNATURE_ANNOTATION: "not base64!"})
    assert check_layer(bad, DIGEST, keys(release=new_key())).outcome is Outcome.BAD_SIGNATURE


def test_a_genuine_signature_over_something_else_than_a_cosign_payload_is_bad() -> None:
    key = new_key()
    other = b'{"critical":{"type":"something else"}}'
    odd = SignatureLayer(other, {SIGNATURE_ANNOTATION: sign(key, other)})
    assert check_layer(odd, DIGEST, keys(release=key)).outcome is Outcome.BAD_SIGNATURE


def test_ed25519_keys_verify_too() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signed = payload(DIGEST, "example.com/app")
    good = SignatureLayer(signed, {SIGNATURE_ANNOTATION: sign(key, signed)})
    loaded = {"ed": load_public_key(public_pem(key))}
    assert loaded["ed"].algorithm == "ed25519"
    assert check_layer(good, DIGEST, loaded).outcome is Outcome.VERIFIED


def test_one_good_signature_among_bad_ones_verifies() -> None:
    key, stranger = new_key(), new_key()
    verdict = judge([layer(stranger), layer(key)], DIGEST, keys(release=key))
    assert (verdict.outcome, verdict.signers) == (Outcome.VERIFIED, ("release",))


def test_the_most_telling_failure_is_reported() -> None:
    key = new_key()
    verdict = judge([layer(new_key()), layer(key, OTHER)], DIGEST, keys(release=key))
    assert verdict.outcome is Outcome.DIGEST_MISMATCH
    assert judge([], DIGEST, keys(release=key)).outcome is None


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
        rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused on purpose
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        ec.generate_private_key(ec.SECP256K1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    ],
    ids=["empty", "garbage", "rsa-1024", "secp256k1"],
)
def test_keys_tagwarden_cannot_trust_are_refused(pem: str) -> None:
    with pytest.raises(ValueError, match="public_key"):
        load_public_key(pem)


def evidence(status: SignatureStatus, *signers: str) -> SignatureEvidence:
    return SignatureEvidence(status=status, signers=list(signers), checked_at=WHEN)


def test_the_policy_passes_only_what_its_keys_signed_often_enough() -> None:
    enforce = SignaturePolicy.model_validate(
        {"mode": "enforce", "keys": ["a", "b"], "min_signers": 2}
    )
    assert signature_failure(enforce, evidence(SignatureStatus.VERIFIED, "a", "b")) is None
    assert signature_failure(enforce, evidence(SignatureStatus.VERIFIED, "a", "c"))
    assert signature_failure(enforce, evidence(SignatureStatus.UNSIGNED)) == "signature unsigned"
    assert signature_failure(enforce, None) == "the signature has not been checked"
    off = SignaturePolicy()
    assert signature_failure(off, evidence(SignatureStatus.INVALID)) is None
    anyone = SignaturePolicy.model_validate({"mode": "warn"})
    assert signature_failure(anyone, evidence(SignatureStatus.VERIFIED, "z")) is None
