"""Signing keys (a request's evidence is checked on demand by approvals' router)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from tagwarden.auth.deps import Admin, Session, Viewer
from tagwarden.errors import error_responses
from tagwarden.evidence import service
from tagwarden.evidence.schemas import SigningKeyIn, SigningKeyOut

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
