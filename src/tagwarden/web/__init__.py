"""The admin pages: server-rendered views over the same services the API calls."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from tagwarden.web import (
    views_approvals,
    views_auth,
    views_devices,
    views_images,
    views_ops,
    views_rollouts,
)

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
for _part in (views_auth, views_approvals, views_images, views_rollouts, views_devices, views_ops):
    router.include_router(_part.router)
