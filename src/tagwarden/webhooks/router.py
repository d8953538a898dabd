"""Inbound webhook routes: Docker Hub (secret in the path), distribution registries and Harbor
(bearer secret), GitHub Container Registry (HMAC signature of the body).

Every route authenticates before it reads the body, so a request without credentials gets 401
and nothing else; a push of an image that is not in the catalogue, or not approved, gets 202
with the reason and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from tagwarden.auth.deps import AppSettings, Sessions
from tagwarden.config import Settings
from tagwarden.db import transaction
from tagwarden.errors import InvalidInput, Unauthorized, error_responses
from tagwarden.monitor.deps import Monitor
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.webhooks import payloads, service
from tagwarden.webhooks.payloads import Push

# Their credential (a secret) is checked in the route, not by a dependency: declared here.
router = APIRouter(
    prefix="/api/v1/webhooks", tags=["webhooks"], responses=error_responses(400, 401, 413, 422, 429)
)


class PushResult(BaseModel):
    registry: str | None
    repository: str
    tag: str | None
    image_id: int | None
    status: str  # "checked" or "ignored"
    reason: str | None = None
    requests_created: list[str] = []
    error: str | None = None


class WebhookOut(BaseModel):
    message: str
    results: list[PushResult]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # too deep is refused before; never a 500
        raise InvalidInput(f"the body is not JSON: {exc}") from exc


async def _check(monitor: ImageMonitor, matches: list[service.Match]) -> WebhookOut:
    """Check each matched image once, through the registry, as a manual check would."""
    checked: dict[int, Any] = {}
    results = []
    for m in matches:
        result = PushResult(
            registry=m.push.host,
            repository=m.push.repository,
            tag=m.push.tag,
            image_id=m.image.id if m.image else None,
            status="checked" if m.image else "ignored",
            reason=m.reason,
        )
        if m.image is not None:
            if m.image.id not in checked:
                checked[m.image.id] = await monitor.check(m.image)
            outcome = checked[m.image.id]
            result.requests_created = list(outcome.requests_created)
            result.error = outcome.error
        results.append(result)
    message = f"{len(checked)} image(s) checked" if checked else "nothing to check"
    return WebhookOut(message=message, results=results)


@router.post("/dockerhub/{secret}", status_code=status.HTTP_202_ACCEPTED)
async def dockerhub(
    secret: str,
    request: Request,
    settings: AppSettings,
    sessions: Sessions,
    monitor: Monitor,
) -> WebhookOut:
    """Docker Hub signs nothing: the secret in the path (global, or the image's own) is the
    credential, compared in constant time."""
    global_ok = service.same_secret(secret, settings.webhook_secret)
    if not global_ok:
        # The body is read only for a secret that opens something: a stranger's is never
        # parsed (which images it opens is known only from the payload, checked below).
        async with sessions() as session:
            if not await service.any_image_secret(session, secret):
                raise Unauthorized("invalid webhook secret")
    try:
        pushes = payloads.dockerhub(_json(await request.body()))
    except InvalidInput:
        if not global_ok:  # a stranger learns nothing about the payload format
            raise Unauthorized("invalid webhook secret") from None
        raise
    async with transaction(sessions) as session:
        # Raising inside the transaction rolls back the audit entries match_all wrote.
        matches = await service.match_all(session, pushes, settings, source="dockerhub")
        images = {m.image.id for m in matches if m.image is not None}
        if not global_ok and (
            any(m.image is None for m in matches)
            or (images and not await service.image_secrets_match(session, images, secret))
        ):
            raise Unauthorized("invalid webhook secret")
    return await _check(monitor, matches)


@router.post("/registry", status_code=status.HTTP_202_ACCEPTED)
async def registry(
    request: Request, settings: AppSettings, sessions: Sessions, monitor: Monitor
) -> WebhookOut:
    """docker-registry's ``notifications`` (``application/vnd.docker.distribution.events.v1+json``)
    and Harbor's webhooks, with ``Authorization: Bearer <secret>`` (Harbor's "Auth Header")."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else header.strip()
    if not given or not service.same_secret(given, settings.webhook_secret):
        raise Unauthorized("missing or invalid bearer secret (Authorization: Bearer <secret>)")
    pushes = payloads.distribution(_json(await request.body()))
    return await _handle(pushes, "registry", settings, sessions, monitor)


@router.post("/github", status_code=status.HTTP_202_ACCEPTED)
async def github(
    request: Request, settings: AppSettings, sessions: Sessions, monitor: Monitor
) -> WebhookOut:
    """GitHub ``package``/``registry_package`` events, verified by ``X-Hub-Signature-256``."""
    body = await request.body()
    secret = settings.github_webhook_secret or settings.webhook_secret
    if not service.valid_signature(body, request.headers.get("x-hub-signature-256"), secret):
        raise Unauthorized("missing or invalid X-Hub-Signature-256")
    event = request.headers.get("x-github-event", "")
    return await _handle(payloads.github(event, _json(body)), "github", settings, sessions, monitor)


async def _handle(
    pushes: list[Push], source: str, settings: Settings, sessions: Sessions, monitor: ImageMonitor
) -> WebhookOut:
    async with transaction(sessions) as session:
        matches = await service.match_all(session, pushes, settings, source=source)
    return await _check(monitor, matches)
