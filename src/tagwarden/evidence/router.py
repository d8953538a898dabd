"""Signing keys, and checking a request's evidence on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from tagwarden.approvals.service import get_request
from tagwarden.auth.deps import Admin, Approver, Session, Sessions, Viewer
from tagwarden.db import transaction
from tagwarden.errors import error_responses
from tagwarden.evidence import service, sizing
from tagwarden.evidence.checker import refresh_request
from tagwarden.evidence.deps import Checker, Sboms
from tagwarden.evidence.schemas import EvidenceOut, SigningKeyIn, SigningKeyOut
from tagwarden.inputs import IdPath
from tagwarden.registry.deps import RegistryClients

router = APIRouter(tags=["evidence"])

KeyNamePath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")]


@router.get("/api/v1/signing-keys")
async def list_keys(session: Session, _: Viewer) -> list[SigningKeyOut]:
    return [SigningKeyOut.model_validate(k) for k in await service.list_keys(session)]


@router.post(
    "/api/v1/signing-keys",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409, 422),
)
async def add_key(body: SigningKeyIn, session: Session, who: Admin) -> SigningKeyOut:
    key = await service.add_key(
        session, name=body.name, public_key=body.public_key, actor=who.identity
    )
    return SigningKeyOut.model_validate(key)


@router.delete("/api/v1/signing-keys/{name}", responses=error_responses(404))
async def delete_key(name: KeyNamePath, session: Session, who: Admin) -> SigningKeyOut:
    return SigningKeyOut.model_validate(await service.delete_key(session, name, actor=who.identity))


@router.post("/api/v1/images/approvals/{request_id}/evidence", responses=error_responses(404))
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
    await refresh_request(checker, request_id, always=True)
    await sizing.refresh_request(sessions, clients, request_id)
    async with transaction(sessions) as session:
        found = await get_request(session, request_id)
        image_id, digest, tag = found.image_id, found.digest, found.tag_name
    if tag is not None:
        await sboms.collect_for_image(image_id, digest)
    async with transaction(sessions) as session:
        return await service.evidence_for(session, image_id, digest)
