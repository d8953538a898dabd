"""Evidence and evidence-policy bodies: what a digest holds, and what an image requires of it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tagwarden.inputs import INT32_MAX, NO_NUL, STRICT_INPUT, WHOLE


class PolicyMode(StrEnum):
    """``off``: not checked; ``warn``: a person may approve, the failed check is audited;
    ``enforce``: approval, activation and rollout start are refused, rules never approve."""

    OFF = "off"
    WARN = "warn"
    ENFORCE = "enforce"


class SignatureStatus(StrEnum):
    VERIFIED = "verified"
    UNSIGNED = "unsigned"
    INVALID = "invalid"
    ERROR = "error"


class SignatureReason(StrEnum):
    """Why a signature is ``invalid``; an ``error`` names the failing step in its own words."""

    BAD_SIGNATURE = "bad_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    UNKNOWN_KEY = "unknown_key"


class SignedAt(StrEnum):
    """What was signed: the digest under review (``index``; for a single-platform image that is
    its manifest) or each platform manifest of a multi-arch index (``platforms``)."""

    INDEX = "index"
    PLATFORMS = "platforms"


# The strict input config refuses a string where an enum is declared (it wants the Python
# object); JSON can only send the string, so modes are read from their values.
Mode = Annotated[PolicyMode, Field(strict=False)]

KeyName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")]


class SignaturePolicy(BaseModel):
    model_config = STRICT_INPUT

    mode: Mode = PolicyMode.OFF
    keys: list[KeyName] = Field(
        default_factory=list,
        max_length=50,
        description="names of registered signing keys that count; empty: any registered key",
    )
    min_signers: Annotated[int, Field(ge=1, le=50), WHOLE] = 1


class SizePolicy(BaseModel):
    model_config = STRICT_INPUT

    mode: Mode = PolicyMode.OFF
    max_growth_percent: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    # Images past 2 GiB are common (CUDA, ML runtimes): the limit is a JSON number, stored in
    # the policy's JSON column, not an INTEGER column, so it may go to 2^53 (exact in JSON).
    max_bytes: (
        Annotated[
            int,
            Field(
                ge=0,
                le=2**53,
                description="largest compressed size (bytes) of any platform",
                json_schema_extra={"x-stored-in-json": True},
            ),
            WHOLE,
        ]
        | None
    ) = None


class SignatureEvidence(BaseModel):
    """The result of the last signature check of a digest."""

    model_config = ConfigDict(use_enum_values=True)

    status: SignatureStatus
    signers: list[str] = Field(
        default_factory=list, description="names of the registered keys whose signature verified"
    )
    signed_digest: str | None = Field(
        default=None, description="the digest named by the verified (or offending) payload"
    )
    signed: SignedAt | None = None
    platforms: dict[str, str] | None = Field(
        default=None,
        description="architecture → the platform manifest digest that was signed, "
        "when each platform is signed rather than the index",
    )
    reason: str | None = Field(
        default=None,
        description="bad_signature, digest_mismatch or unknown_key when invalid; "
        "tagwarden's own words for an error",
    )
    checked_at: datetime


class EvidenceOut(BaseModel):
    """What is known of a request's digest; null where it has not been checked."""

    signature: SignatureEvidence | None = None
    size: dict[str, Any] | None = None
    vulnerabilities: dict[str, Any] | None = Field(
        default=None,
        description="what matching the digest's SBOMs against the OSV data found: status, "
        "counts by severity, fixable, new and fixed against the previous approved tag, osv_data",
    )


class SigningKeyIn(BaseModel):
    model_config = STRICT_INPUT

    name: KeyName
    public_key: str = Field(
        min_length=1,
        max_length=20_000,
        pattern=NO_NUL,
        description="PEM `PUBLIC KEY` (ECDSA P-256/P-384/P-521, Ed25519 or RSA ≥ 2048 bits)",
    )


class SigningKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: Annotated[int, Field(ge=1, le=INT32_MAX)]
    name: str
    public_key: str
    algorithm: str
    fingerprint: str
    created_at: datetime
    created_by: str
