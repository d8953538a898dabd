"""Whether a digest's evidence passes its image's policy (pure, no I/O)."""

from __future__ import annotations

from tagwarden.evidence.schemas import (
    PolicyMode,
    SignatureEvidence,
    SignaturePolicy,
    SignatureStatus,
)


def signature_failure(policy: SignaturePolicy, evidence: SignatureEvidence | None) -> str | None:
    """Why the evidence fails the policy, in a reviewer's words; None when it passes (or the
    policy is off)."""
    if policy.mode == PolicyMode.OFF:
        return None
    if evidence is None:
        return "the signature has not been checked"
    if evidence.status != SignatureStatus.VERIFIED:
        why = f" ({evidence.reason})" if evidence.reason else ""
        return f"signature {evidence.status}{why}"
    counted = [s for s in evidence.signers if not policy.keys or s in policy.keys]
    if len(counted) < policy.min_signers:
        wanted = ", ".join(policy.keys) if policy.keys else "any registered key"
        return (
            f"signed by {len(counted)} of the {policy.min_signers} required signer(s) "
            f"({wanted}); signers: {', '.join(evidence.signers) or 'none'}"
        )
    return None
