"""API token management (admins), and who-am-I for any token."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel

from tagwarden.auth import service
from tagwarden.auth.schemas import TokenCreate, TokenCreated, TokenOut
from tagwarden.deps import Admin, Session, Viewer
from tagwarden.inputs import IdPath

router = APIRouter(prefix="/api/v1", tags=["auth"])


class WhoAmI(BaseModel):
    identity: str
    role: str


@router.get("/auth/me")
async def whoami(who: Viewer) -> WhoAmI:
    return WhoAmI(identity=who.identity, role=who.role)


@router.get("/tokens")
async def list_tokens(session: Session, _: Admin) -> list[TokenOut]:
    return [TokenOut.of(t) for t in await service.list_tokens(session)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, session: Session, who: Admin) -> TokenCreated:
    token, raw = await service.create_token(
        session, name=body.name, role=body.role, identity=body.identity, actor=who.identity
    )
    return TokenCreated(**TokenOut.of(token).model_dump(), token=raw)


@router.delete("/tokens/{token_id}")
async def revoke_token(token_id: IdPath, session: Session, who: Admin) -> TokenOut:
    return TokenOut.of(await service.revoke_token(session, token_id, actor=who.identity))
