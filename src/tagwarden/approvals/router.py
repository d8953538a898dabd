"""Approval routes (seed 000's "Approval Workflow" endpoints)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from tagwarden.approvals import approving, checks, service
from tagwarden.approvals.approving import AfterApproval
from tagwarden.approvals.schemas import (
    ApprovalRequestCreate,
    ApprovalRequestOut,
    BulkDecision,
    BulkOut,
    BulkResult,
    Decision,
    ProcessOut,
)
from tagwarden.approvals.states import ALL, RequestStatus, StatusFilter
from tagwarden.auth.deps import Approver, AppSettings, Session, Sessions, Viewer
from tagwarden.catalogue.schemas import ImageCreate, ImageOut, ImageTagOut
from tagwarden.db import transaction
from tagwarden.errors import error_responses
from tagwarden.evidence import service as evidence
from tagwarden.evidence.deps import Checker
from tagwarden.evidence.schemas import EvidenceOut
from tagwarden.inputs import IdPath, IdQuery
from tagwarden.pagination import Page, Paging
from tagwarden.registry.deps import RegistryClients
from tagwarden.vulnerabilities.deps import Sboms
from tagwarden.vulnerabilities.schemas import FindingOut

router = APIRouter(prefix="/api/v1/images", tags=["approvals"])
# Adding an image is the catalogue's route, answered here: anyone but an admin asks for the
# image through an image-level request, and requests are this part's.
images_router = APIRouter(prefix="/api/v1/images", tags=["images"])
# A request's vulnerability findings: listed under vulnerabilities, answered here since they
# are read through the request.
findings_router = APIRouter(prefix="/api/v1/images", tags=["vulnerabilities"])

StatusQuery = Annotated[
    StatusFilter, Query(description="which requests to list; `all` for every status")
]


@images_router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
async def add_image(
    body: ImageCreate, session: Session, who: Viewer, settings: AppSettings
) -> ImageOut:
    return ImageOut.of(await service.add_image(session, body, who, settings))


@router.get("/approvals")
@router.get("/approval-requests", include_in_schema=False)
async def list_requests(
    session: Session,
    _: Viewer,
    paging: Paging,
    status: StatusQuery = RequestStatus.PENDING.value,
    image_id: IdQuery = None,
) -> Page[ApprovalRequestOut]:
    rows, total = await service.list_requests(
        session,
        status=None if status == ALL else status,
        image_id=image_id,
        limit=paging.limit,
        offset=paging.offset,
    )
    found = await evidence.evidence_for_many(session, ((r.image_id, r.digest) for r in rows))
    items = [
        ApprovalRequestOut.of(r, evidence=found.get((r.image_id, r.digest or ""), EvidenceOut()))
        for r in rows
    ]
    return Page(items=items, total=total, **paging.model_dump())


@router.post("/approvals", status_code=status.HTTP_201_CREATED, responses=error_responses(404, 409))
async def create_request(
    body: ApprovalRequestCreate,
    session: Session,
    who: Approver,
    checker: Checker,
    sessions: Sessions,
    clients: RegistryClients,
    sboms: Sboms,
) -> ApprovalRequestOut:
    # The evidence first, in its own transactions: the request's creation then holds no
    # write lock while the registry (or Syft) answers.
    await checker.refresh(body.image_id, body.metadata.digest, tag=body.tag_name)
    await checks.refresh_sizes(
        sessions,
        clients,
        body.image_id,
        body.metadata.digest,
        only_with_policy=True,
    )
    await sboms.collect_for_image(body.image_id, body.metadata.digest)
    await checks.scan_request_digest(session, body.image_id, body.metadata.digest)
    request = await service.create_manual_request(
        session,
        image_id=body.image_id,
        tag_name=body.tag_name,
        metadata=body.metadata.model_dump(mode="json", exclude_none=True),
        actor=who,
    )
    return ApprovalRequestOut.of(request)


@router.post("/approvals/bulk")
async def bulk_decide(
    body: BulkDecision, session: Session, who: Approver, settings: AppSettings
) -> BulkOut:
    items = await approving.bulk_decide(
        session,
        body.ids,
        approve=body.action == "approve",
        notes=body.notes,
        actor=who,
        then=AfterApproval.of(settings),
    )
    results = [
        BulkResult(id=i.request_id, ok=True, status=i.status)
        if i.error is None
        else BulkResult(id=i.request_id, ok=False, detail=i.error.detail, code=i.error.code)
        for i in items
    ]
    ok = sum(r.ok for r in results)
    return BulkOut(results=results, succeeded=ok, failed=len(results) - ok)


@router.get("/approvals/{request_id}")
async def get_request(request_id: IdPath, session: Session, _: Viewer) -> ApprovalRequestOut:
    request = await service.get_request(session, request_id)
    found = await evidence.evidence_for(session, request.image_id, request.digest)
    return ApprovalRequestOut.of(request, evidence=found)


async def _decide(
    request_id: IdPath,
    body: Decision | None,
    approve: bool,
    session: Session,
    who: Approver,
    settings: AppSettings,
    checker: Checker,
) -> ApprovalRequestOut:
    if approve:
        # Asked now, before the decision's transaction writes anything: the registry may
        # have changed since the request was made.
        await checks.refresh_signatures(checker, request_id)
    result = await approving.decide(
        session,
        request_id,
        approve=approve,
        notes=body.notes if body else None,
        actor=who,
        then=AfterApproval.of(settings),
    )
    tags = [ImageTagOut.of(r) for r in result.activation.image_tags] if result.activation else None
    return ApprovalRequestOut.of(result.request, tags)


@router.post("/approvals/{request_id}/approve", responses=error_responses(409))
async def approve(
    request_id: IdPath,
    session: Session,
    who: Approver,
    settings: AppSettings,
    checker: Checker,
    body: Decision | None = None,
) -> ApprovalRequestOut:
    return await _decide(request_id, body, True, session, who, settings, checker)


@router.post("/approvals/{request_id}/reject", responses=error_responses(409))
async def reject(
    request_id: IdPath,
    session: Session,
    who: Approver,
    settings: AppSettings,
    checker: Checker,
    body: Decision | None = None,
) -> ApprovalRequestOut:
    return await _decide(request_id, body, False, session, who, settings, checker)


@router.post("/approvals/{request_id}/process", responses=error_responses(409))
async def process(
    request_id: IdPath, session: Session, who: Approver, settings: AppSettings, checker: Checker
) -> ProcessOut:
    await checks.refresh_signatures(checker, request_id)
    done = await approving.activate(
        session, request_id, actor=who, poll_interval=settings.device_poll_interval_seconds
    )
    message = (
        f"Approval request {request_id} was already processed"
        if done.already_processed
        else f"Successfully processed approval request {request_id}"
    )
    return ProcessOut(
        message=message,
        approval_request=ApprovalRequestOut.of(done.request),
        image_tags=[ImageTagOut.of(r) for r in done.image_tags],
        created=done.created,
        already_processed=done.already_processed,
    )


@router.post("/approvals/{request_id}/evidence", tags=["evidence"], responses=error_responses(404))
async def check_evidence(
    request_id: IdPath,
    checker: Checker,
    sessions: Sessions,
    clients: RegistryClients,
    sboms: Sboms,
    _: Approver,
) -> EvidenceOut:
    """Check the request's digest now (signatures, against the registered keys; sizes, from its
    platform manifests; the SBOM of a platform that has none stored, or only an error) and
    store the results; the answer is the digest's evidence after."""
    await checks.refresh_signatures(checker, request_id, always=True)
    await checks.refresh_request_sizes(sessions, clients, request_id)
    async with transaction(sessions) as session:
        found = await service.get_request(session, request_id)
        image_id, digest, tag = found.image_id, found.digest, found.tag_name
    if tag is not None:
        await sboms.collect_for_image(image_id, digest)
    async with transaction(sessions) as session:
        if tag is not None:
            await checks.scan_request_digest(session, image_id, digest)
        return await evidence.evidence_for(session, image_id, digest)


@findings_router.get("/approvals/{request_id}/vulnerabilities", responses=error_responses(404))
async def list_findings(request_id: IdPath, session: Session, _: Viewer) -> list[FindingOut]:
    """The findings of the request's digest (every platform's SBOM), as of the last match."""
    found = await checks.request_findings(session, request_id)
    return [FindingOut.model_validate(f) for f in found]
