"""API token bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tagwarden.auth.models import ApiToken
from tagwarden.inputs import STRICT_INPUT, Name


class TokenCreate(BaseModel):
    model_config = STRICT_INPUT

    name: Name = Field(min_length=1, max_length=100)
    role: Literal["viewer", "approver", "admin"]
    identity: Name = Field(min_length=1, max_length=255)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
        return cls.model_validate(token)


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its hash is stored")
