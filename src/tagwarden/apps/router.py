"""App definition routes: admins write, viewers read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from tagwarden.apps import service
from tagwarden.apps.schemas import NAME_PATTERN, AppOut, AppPut
from tagwarden.auth.deps import Admin, AppSettings, Session, Viewer
from tagwarden.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["apps"])

AppName = Annotated[str, Path(pattern=NAME_PATTERN, description="the app name rollouts use")]


@router.get("/apps")
async def list_apps(session: Session, _: Viewer) -> list[AppOut]:
    return [AppOut.of(a) for a in await service.list_apps(session)]


@router.get("/apps/{name}")
async def get_app(name: AppName, session: Session, _: Viewer) -> AppOut:
    return AppOut.of(await service.get_app(session, name))


@router.put(
    "/apps/{name}",
    responses={201: {"model": AppOut, "description": "created"}, **error_responses(409)},
)
async def put_app(
    name: AppName,
    body: AppPut,
    session: Session,
    who: Admin,
    settings: AppSettings,
    response: Response,
) -> AppOut:
    app, created = await service.put_app(
        session, name, body, who, bind_roots=settings.app_bind_roots
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return AppOut.of(app)


@router.delete("/apps/{name}")
async def delete_app(name: AppName, session: Session, who: Admin) -> AppOut:
    return AppOut.of(await service.delete_app(session, name, who))
