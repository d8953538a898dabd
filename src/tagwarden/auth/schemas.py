"""API token bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tagwarden.auth.models import ApiToken


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["viewer", "approver", "admin"]
    identity: str = Field(min_length=1, max_length=255)


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    identity: str
    token_prefix: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            role=token.role,
            identity=token.identity,
            token_prefix=token.token_prefix,
            created_at=token.created_at,
            created_by=token.created_by,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its hash is stored")
