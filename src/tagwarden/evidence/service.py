"""Evidence use cases: read the evidence of a digest, store a check's result (an upsert)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.catalogue.models import ImagePolicy
from tagwarden.db import flush_unique, insert_for, utcnow
from tagwarden.errors import Conflict, InvalidInput, NotFound
from tagwarden.evidence.models import DigestEvidence, SigningKey
from tagwarden.evidence.policy import signature_failure
from tagwarden.evidence.schemas import (
    EvidenceOut,
    PolicyMode,
    SignatureEvidence,
    SignaturePolicy,
    SignatureStatus,
)
from tagwarden.evidence.signatures import LoadedKey, load_public_key

log = logging.getLogger(__name__)


async def evidence_for(session: AsyncSession, image_id: int, digest: str | None) -> EvidenceOut:
    """The evidence of one digest; empty for a digest never checked (or no digest at all)."""
    if digest is None:
        return EvidenceOut()
    row = await session.scalar(
        select(DigestEvidence).where(
            DigestEvidence.image_id == image_id, DigestEvidence.digest == digest
        )
    )
    return _out(row)


async def evidence_for_many(
    session: AsyncSession, keys: Iterable[tuple[int, str | None]]
) -> dict[tuple[int, str], EvidenceOut]:
    """``evidence_for`` of many (image, digest) pairs in one query (a page of requests)."""
    wanted = {(i, d) for i, d in keys if d is not None}
    if not wanted:
        return {}
    rows = await session.scalars(
        select(DigestEvidence).where(
            tuple_(DigestEvidence.image_id, DigestEvidence.digest).in_(list(wanted))
        )
    )
    return {(r.image_id, r.digest): _out(r) for r in rows}


def _out(row: DigestEvidence | None) -> EvidenceOut:
    if row is None:
        return EvidenceOut()
    signature = SignatureEvidence.model_validate(row.signature) if row.signature else None
    return EvidenceOut(signature=signature, size=row.size, vulnerabilities=row.vulnerabilities)


async def _upsert(
    session: AsyncSession, image_id: int, digest: str, column: str, value: dict[str, Any]
) -> None:
    # ON CONFLICT, not read-then-insert: the monitor, an on-demand check and a rollout start may
    # all store the same digest's evidence at once.
    insert = insert_for(session)
    now = utcnow()
    statement = insert(DigestEvidence).values(
        image_id=image_id, digest=digest, updated_at=now, **{column: value}
    )
    statement = statement.on_conflict_do_update(
        index_elements=["image_id", "digest"], set_={column: value, "updated_at": now}
    )
    await session.execute(statement)
    # An ORM copy loaded earlier in this session must not hide the new value.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, DigestEvidence) and (obj.image_id, obj.digest) == (image_id, digest):
            session.expire(obj)


async def store_signature(
    session: AsyncSession, image_id: int, digest: str, evidence: SignatureEvidence
) -> None:
    await _upsert(session, image_id, digest, "signature", evidence.model_dump(mode="json"))


async def store_size(
    session: AsyncSession, image_id: int, digest: str, size: dict[str, Any]
) -> None:
    await _upsert(session, image_id, digest, "size", size)


async def store_vulnerabilities(
    session: AsyncSession, image_id: int, digest: str, evidence: dict[str, Any]
) -> None:
    await _upsert(session, image_id, digest, "vulnerabilities", evidence)


# -- signing keys --------------------------------------------------------------------------


async def list_keys(session: AsyncSession) -> Sequence[SigningKey]:
    return (await session.scalars(select(SigningKey).order_by(SigningKey.name))).all()


async def add_key(session: AsyncSession, *, name: str, public_key: str, actor: str) -> SigningKey:
    try:
        loaded = load_public_key(public_key)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    key = SigningKey(
        name=name,
        public_key=public_key.strip() + "\n",
        algorithm=loaded.algorithm,
        fingerprint=loaded.fingerprint,
        created_by=actor,
    )
    session.add(key)
    await flush_unique(session, Conflict(f"signing key {name} exists", code="key_exists"))
    audit.record(
        session,
        actor=actor,
        action="signing_key.added",
        entity_type="signing_key",
        entity_id=key.id,
        after=_key_fields(key),
    )
    return key


async def delete_key(session: AsyncSession, name: str, *, actor: str) -> SigningKey:
    key = await session.scalar(select(SigningKey).where(SigningKey.name == name))
    if key is None:
        raise NotFound(f"signing key {name} not found")
    await session.delete(key)
    audit.record(
        session,
        actor=actor,
        action="signing_key.deleted",
        entity_type="signing_key",
        entity_id=key.id,
        before=_key_fields(key),
    )
    return key


def _key_fields(key: SigningKey) -> dict[str, Any]:
    return {"name": key.name, "algorithm": key.algorithm, "fingerprint": key.fingerprint}


async def load_keys(session: AsyncSession) -> dict[str, LoadedKey]:
    """The registered keys, ready to verify with (a key that no longer loads is left out)."""
    keys: dict[str, LoadedKey] = {}
    for row in await list_keys(session):
        try:
            keys[row.name] = load_public_key(row.public_key)
        except ValueError:
            log.warning("signing key %s no longer loads; it verifies nothing", row.name)
    return keys


async def check_key_names(session: AsyncSession, names: Iterable[str]) -> None:
    """A policy may only name registered keys (404 otherwise): a typo would fail every check."""
    wanted = set(names)
    if not wanted:
        return
    known = set(
        (await session.scalars(select(SigningKey.name).where(SigningKey.name.in_(wanted)))).all()
    )
    missing = sorted(wanted - known)
    if missing:
        raise NotFound(f"signature.keys: no signing key named {', '.join(missing)}")


# -- the policy's gates ----------------------------------------------------------------------


async def signature_policy(session: AsyncSession, image_id: int) -> SignaturePolicy:
    stored = await session.scalar(
        select(ImagePolicy.signature_policy).where(ImagePolicy.image_id == image_id)
    )
    return SignaturePolicy.model_validate(stored or {})


async def wants_signatures(session: AsyncSession, image_id: int) -> bool:
    """Whether checking this image's signatures is worth a registry's time: its policy checks
    them, or some key is registered (the reviewer then sees who signed)."""
    if (await signature_policy(session, image_id)).mode != PolicyMode.OFF:
        return True
    return bool(await session.scalar(select(func.count()).select_from(SigningKey)))


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """A failed check under ``warn``: what the decision's audit entry records."""

    mode: str
    failure: str

    def as_dict(self) -> dict[str, str]:
        return {"check": "signature", "mode": self.mode, "failure": self.failure}


async def signature_gate(
    session: AsyncSession, image_id: int, digest: str | None, *, step: str, strict: bool = False
) -> SignatureCheck | None:
    """Hold ``step`` (approval, activation, rollout) to the image's signature policy.

    ``enforce`` (or any mode when ``strict``, as for a rule's approval, which only a person
    may give past a warning): a failing digest is a 409 ``signature_required``. ``warn``: the
    failure is returned for the caller's audit entry.
    """
    policy = await signature_policy(session, image_id)
    if policy.mode == PolicyMode.OFF or digest is None:
        return None
    found = (await evidence_for(session, image_id, digest)).signature
    failure = signature_failure(policy, found)
    if failure is None:
        return None
    if policy.mode == PolicyMode.ENFORCE or strict:
        raise Conflict(
            f"{step} refused: {digest} fails the image's signature policy: {failure}",
            code="signature_required",
        )
    return SignatureCheck(policy.mode, failure)


def signature_events(
    evidence: SignatureEvidence, *, image_id: int, image: str, tag: str | None, digest: str
) -> list[tuple[str, dict[str, Any]]]:
    """``tag.unsigned`` / ``tag.signature_invalid`` for a check that found no good signature."""
    if evidence.status == SignatureStatus.UNSIGNED:
        event = "tag.unsigned"
    elif evidence.status == SignatureStatus.INVALID:
        event = "tag.signature_invalid"
    else:
        return []
    payload = {
        "image_id": image_id,
        "image": image,
        "tag": tag,
        "digest": digest,
        "status": str(evidence.status),
        "reason": evidence.reason,
        "signed_digest": evidence.signed_digest,
    }
    return [(event, payload)]
