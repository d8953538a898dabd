"""Activation (seed 000, step 3, the seeds' "process"): an approved request becomes image_tags.

One row per architecture; ``digest`` is the tag's digest, ``platform_digest`` that
architecture's own manifest where the metadata has one. Processing is idempotent: the request is
claimed with a conditional UPDATE on ``processed_at``, so a second call (or a concurrent one)
adds nothing and answers with the rows that exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import metadata as meta
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import RequestAction, allows
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue import service as catalogue
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.catalogue.states import ImageAction
from tagwarden.db import insert_for, utcnow
from tagwarden.errors import Conflict, NotFound
from tagwarden.evidence import service as evidence
from tagwarden.notify.service import emit


@dataclass(frozen=True)
class Activation:
    request: ApprovalRequest
    image: Image
    image_tags: Sequence[ImageTag]
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    already_processed: bool = False
    auto_rollout_id: int | None = None  # the rollout the image's template started (approving)

    @property
    def reference(self) -> str:
        return f"{self.image.display_name}:{self.request.tag_name}"


async def _tag_rows(session: AsyncSession, image_id: int, tag: str) -> Sequence[ImageTag]:
    rows = await session.scalars(
        select(ImageTag)
        .where(ImageTag.image_id == image_id, ImageTag.tag == tag)
        .order_by(ImageTag.id)
        .execution_options(populate_existing=True)
    )
    return rows.all()


async def process(session: AsyncSession, request_id: int, *, actor: Principal) -> Activation:
    request = await session.get(ApprovalRequest, request_id)
    if request is None:
        raise NotFound(f"approval request {request_id} not found")
    if not allows(request.status, RequestAction.PROCESS):
        raise Conflict(
            f"approval request {request_id} is {request.status}; only approved requests can be "
            "processed",
            code="not_approved",
        )
    image = await session.get(Image, request.image_id)
    if image is None:  # pragma: no cover - the foreign key makes this impossible
        raise NotFound(f"image {request.image_id} not found")
    if request.tag_name is not None and request.processed_at is None:
        # Checked again: the registry may have changed since the approval (a signature
        # removed, a key deleted), and activation is what makes the digest deployable.
        await evidence.signature_gate(session, image.id, request.digest, step="activation")
    if not await _claim(session, request):
        rows = await _tag_rows(session, image.id, request.tag_name) if request.tag_name else []
        return Activation(request, image, rows, already_processed=True)
    if request.tag_name is None:
        await catalogue.change_status(
            session, image, ImageAction.ADMIT, actor=actor.identity, request_id=request.id
        )
        return Activation(request, image, [])
    return await _activate_tag(session, request, image, request.tag_name, actor)


async def _claim(session: AsyncSession, request: ApprovalRequest) -> bool:
    """Mark the request processed; False when it already was (by this call's twin, maybe)."""
    claimed = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request.id, ApprovalRequest.processed_at.is_(None))
        .values(processed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.refresh(request)
    return getattr(claimed, "rowcount", 0) == 1


async def _activate_tag(
    session: AsyncSession, request: ApprovalRequest, image: Image, tag: str, actor: Principal
) -> Activation:
    archs = meta.architectures(request.metadata_)
    if not archs:
        raise Conflict(
            f"approval request {request.id} has no architectures in its metadata; nothing to "
            "activate",
            code="no_architectures",
        )
    existing = {row.architecture: row for row in await _tag_rows(session, image.id, tag)}
    digest = request.metadata_.get("digest")
    last_updated = meta.parse_timestamp(request.metadata_.get("last_updated"))
    created: list[str] = []
    updated: list[str] = []
    for arch in archs:
        values = {
            "digest": digest,
            "platform_digest": meta.platform_digest(request.metadata_, arch),
            "last_updated": last_updated,
            "metadata_": {"architectures": [arch], "source": request.source},
            "approval_request_id": request.id,
        }
        row = existing.get(arch)
        if row is None:
            if await _insert_tag_row(session, image.id, tag, arch, values):
                created.append(arch)
        elif (row.digest, row.platform_digest) != (values["digest"], values["platform_digest"]):
            # An approved re-push: the tag keeps its name and flags, and points at the new digest.
            for name, value in values.items():
                setattr(row, name, value)
            updated.append(arch)
    done = Activation(
        request, image, await _tag_rows(session, image.id, tag), created=created, updated=updated
    )
    await _record(session, done, archs, actor)
    return done


async def _record(
    session: AsyncSession, done: Activation, archs: list[str], actor: Principal
) -> None:
    request, image = done.request, done.image
    digest = request.metadata_.get("digest")
    audit.record(
        session,
        actor=actor.identity,
        action="tag.activated",
        entity_type="approval_request",
        entity_id=request.id,
        after={
            "image_id": image.id,
            "tag": request.tag_name,
            "digest": digest,
            "created": done.created,
            "updated": done.updated,
        },
    )
    await emit(
        session,
        "tag.activated",
        {
            "request_id": request.id,
            "image_id": image.id,
            "image": image.display_name,
            "tag": request.tag_name,
            "digest": digest,
            "architectures": archs,
            "reviewed_by": request.reviewed_by,
        },
    )


async def _insert_tag_row(
    session: AsyncSession, image_id: int, tag: str, arch: str, values: dict[str, object]
) -> bool:
    """Insert one architecture row; a row another transaction just added is left alone."""
    insert = insert_for(session)
    row = {
        "image_id": image_id,
        "tag": tag,
        "architecture": arch,
        "digest": values["digest"],
        "platform_digest": values["platform_digest"],
        "last_updated": values["last_updated"],
        "metadata": values["metadata_"],
        "approval_request_id": values["approval_request_id"],
        "is_recommended": False,
        "is_deprecated": False,
        "created_at": utcnow(),
    }
    result = await session.execute(
        insert(cast(Table, ImageTag.__table__))
        .values(row)
        .on_conflict_do_nothing(index_elements=["image_id", "tag", "architecture"])
    )
    return getattr(result, "rowcount", 0) == 1
