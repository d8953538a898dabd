"""Recalls: an activated tag whose digest gained a finding its image's policy blocks is
marked recalled, its running rollouts pause, and ``tag.recalled`` goes out; clearing one
(an allowlist entry, or an admin's unrecall) is audited."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.catalogue.models import Image, ImagePolicy, ImageTag
from tagwarden.db import utcnow
from tagwarden.errors import NotFound
from tagwarden.notify.service import emit
from tagwarden.rollouts import engine
from tagwarden.rollouts.models import Rollout
from tagwarden.rollouts.states import RolloutAction, RolloutStatus
from tagwarden.vulnerabilities import policy as verdicts
from tagwarden.vulnerabilities.policy import Found
from tagwarden.vulnerabilities.schemas import VulnerabilityPolicy

if TYPE_CHECKING:
    from tagwarden.vulnerabilities.rematch import Scope

RECALLED = "recalled"
# The rollouts a recall stops: those still moving devices to the digest.
PAUSABLE = (RolloutStatus.PENDING, RolloutStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class Recalled:
    image_id: int
    tag: str
    digest: str
    ids: list[str]
    paused_rollouts: list[int]


async def _policies(session: AsyncSession, image_ids: Sequence[int]) -> dict[int, Any]:
    rows = await session.execute(
        select(ImagePolicy.image_id, ImagePolicy.vulnerability_policy).where(
            ImagePolicy.image_id.in_(list(image_ids))
        )
    )
    return {i: VulnerabilityPolicy.model_validate(p or {}) for i, p in rows.all() if p is not None}


def _reason(blocked: Sequence[Found]) -> str:
    parts = [f"{f.osv_id} ({f.severity}) in {f.package} {f.installed}" for f in blocked[:10]]
    more = f" and {len(blocked) - 10} more" if len(blocked) > 10 else ""
    return "new findings: " + "; ".join(parts) + more


async def apply_recalls(
    session: AsyncSession,
    scope: Scope,
    added: Mapping[str, list[Found]],
    *,
    actor: str,
    now: datetime,
) -> list[Recalled]:
    """Recall every activated (image, digest) whose platforms gained a blocking finding."""
    hit = [p for p in scope.activated if any(d in added for d in scope.platforms.get(p, ()))]
    policies = await _policies(session, sorted({i for i, _ in hit}))
    done: list[Recalled] = []
    for image_id, digest in sorted(hit):
        policy = policies.get(image_id)
        if policy is None:
            continue
        fresh = [f for d in sorted(scope.platforms[(image_id, digest)]) for f in added.get(d, [])]
        blocked = verdicts.blocking(policy, fresh, now)
        if blocked:
            done += await _recall(session, image_id, digest, blocked, actor=actor, now=now)
    return done


async def _recall(
    session: AsyncSession,
    image_id: int,
    digest: str,
    blocked: Sequence[Found],
    *,
    actor: str,
    now: datetime,
) -> list[Recalled]:
    rows = (
        await session.scalars(
            select(ImageTag).where(ImageTag.image_id == image_id, ImageTag.digest == digest)
        )
    ).all()
    by_tag: dict[str, list[ImageTag]] = defaultdict(list)
    for row in rows:
        by_tag[row.tag].append(row)
    image = await session.get(Image, image_id)
    ids = verdicts.blocked_ids(blocked)
    reason = _reason(blocked)
    done: list[Recalled] = []
    for tag, tag_rows in sorted(by_tag.items()):
        for row in tag_rows:
            row.is_recalled, row.recall_reason, row.recalled_at = True, reason, now
        paused = await _pause_rollouts(session, image_id, tag, digest, actor=actor)
        payload = {
            "image_id": image_id,
            "image": image.display_name if image else None,
            "tag": tag,
            "digest": digest,
            "ids": ids,
            "reason": reason,
            "paused_rollouts": paused,
        }
        audit.record(
            session,
            actor=actor,
            action="tag.recalled",
            entity_type="image",
            entity_id=image_id,
            after=payload,
        )
        await emit(session, "tag.recalled", payload)
        done.append(Recalled(image_id, tag, digest, ids, paused))
    await session.flush()
    return done


async def _pause_rollouts(
    session: AsyncSession, image_id: int, tag: str, digest: str, *, actor: str
) -> list[int]:
    rollouts = (
        await session.scalars(
            select(Rollout)
            .where(
                Rollout.image_id == image_id,
                Rollout.tag == tag,
                Rollout.digest == digest,
                Rollout.status.in_(PAUSABLE),
            )
            .order_by(Rollout.id)
            .with_for_update()
        )
    ).all()
    for rollout in rollouts:
        await engine.set_status(session, rollout, RolloutAction.PAUSE, actor=actor, reason=RECALLED)
    return [r.id for r in rollouts]


async def unrecall(
    session: AsyncSession, image_id: int, tag: str, *, notes: str | None, actor: str
) -> list[ImageTag]:
    """Clear a tag's recall (an admin's decision, audited with the notes); 404 for a tag
    not in image_tags. Paused rollouts stay paused until someone resumes them."""
    rows = (
        await session.scalars(
            select(ImageTag).where(ImageTag.image_id == image_id, ImageTag.tag == tag)
        )
    ).all()
    if not rows:
        raise NotFound(f"tag {tag} of image {image_id} is not in image_tags")
    await _clear(session, image_id, tag, list(rows), actor=actor, why={"notes": notes})
    return list(rows)


async def _clear(
    session: AsyncSession,
    image_id: int,
    tag: str,
    rows: list[ImageTag],
    *,
    actor: str,
    why: dict[str, Any],
) -> None:
    recalled = [r for r in rows if r.is_recalled]
    if not recalled:
        return
    before = {"is_recalled": True, "recall_reason": recalled[0].recall_reason}
    for row in recalled:
        row.is_recalled, row.recall_reason, row.recalled_at = False, None, None
    audit.record(
        session,
        actor=actor,
        action="tag.unrecalled",
        entity_type="image",
        entity_id=image_id,
        before=before,
        after={"tag": tag, "is_recalled": False} | why,
    )
    await session.flush()


async def clear_allowlisted(
    session: AsyncSession,
    image_id: int,
    policy: VulnerabilityPolicy,
    findings_of: Mapping[str, Sequence[Found]],
    *,
    actor: str,
) -> None:
    """After a policy change: clear the recalls of this image's tags that no finding of
    their digest blocks any more (an allowlist entry, a higher block_severity)."""
    rows = (
        await session.scalars(
            select(ImageTag).where(ImageTag.image_id == image_id, ImageTag.is_recalled.is_(True))
        )
    ).all()
    by_tag: dict[str, list[ImageTag]] = defaultdict(list)
    for row in rows:
        by_tag[row.tag].append(row)
    now = utcnow()
    for tag, tag_rows in sorted(by_tag.items()):
        found = findings_of.get(tag_rows[0].digest or "", [])
        if not verdicts.blocking(policy, found, now):
            await _clear(
                session, image_id, tag, tag_rows, actor=actor, why={"cleared_by": "policy"}
            )
