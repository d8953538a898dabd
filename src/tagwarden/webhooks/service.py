"""Which catalogue image a push names, and whether a webhook's secret or signature is good."""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.auth.service import hash_token
from tagwarden.catalogue.models import Image, ImagePolicy
from tagwarden.catalogue.states import ImageStatus
from tagwarden.config import Settings
from tagwarden.notify.senders import sign
from tagwarden.registry.factory import is_docker_hub
from tagwarden.webhooks.payloads import Push


def same_secret(given: str, expected: SecretStr | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def valid_signature(body: bytes, header: str | None, secret: SecretStr | None) -> bool:
    """GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``."""
    if secret is None or not header:
        return False
    # The same signature tagwarden's own webhook channels send (X-Tagwarden-Signature).
    return hmac.compare_digest(header.encode(), sign(secret.get_secret_value(), body).encode())


async def any_image_secret(session: AsyncSession, given: str) -> bool:
    """Whether some image has ``given`` as its own webhook secret. The secrets are stored as
    SHA-256 hashes, so comparing hashes in SQL tells a timing attacker nothing of the secret."""
    found = await session.scalar(
        select(ImagePolicy.image_id)
        .where(ImagePolicy.webhook_secret_hash == hash_token(given))
        .limit(1)
    )
    return found is not None


async def image_secrets_match(
    session: AsyncSession, image_ids: Collection[int], given: str
) -> bool:
    """Whether every one of these images has its own webhook secret and it is ``given``
    (one query for all of a payload's images)."""
    if not image_ids:
        return False
    stored = dict(
        (
            await session.execute(
                select(ImagePolicy.image_id, ImagePolicy.webhook_secret_hash).where(
                    ImagePolicy.image_id.in_(image_ids)
                )
            )
        ).all()
    )
    digest = hash_token(given)
    return all(
        (h := stored.get(i)) is not None and hmac.compare_digest(h, digest) for i in image_ids
    )


@dataclass(frozen=True, slots=True)
class Match:
    push: Push
    image: Image | None
    reason: str | None  # why nothing is checked, when nothing is


def _split(repository: str) -> tuple[str, str]:
    namespace, _, name = repository.strip("/").rpartition("/")
    return namespace, name


def _host_matches(image: Image, host: str, settings: Settings) -> bool:
    if is_docker_hub(host):
        return is_docker_hub(image.registry_host)
    if image.registry_host.lower() == host.lower():
        return True
    configured = settings.registries.get(image.registry_host)
    return configured is not None and urlsplit(configured.url).netloc.lower() == host.lower()


async def match(session: AsyncSession, push: Push, settings: Settings) -> Match:
    """The catalogue image a push is about: same repository path and same registry host.

    A payload without a host (some registries omit it) matches only if exactly one image
    outside Docker Hub has that path, so a push is never pinned on the wrong registry.
    """
    namespace, name = _split(push.repository)
    candidates = (
        await session.scalars(
            select(Image).where(
                func.lower(Image.namespace) == namespace.lower(),
                func.lower(Image.image_name) == name.lower(),
            )
        )
    ).all()
    if push.host:
        found = [i for i in candidates if _host_matches(i, push.host, settings)]
    else:
        found = [i for i in candidates if not is_docker_hub(i.registry_host)]
    where = f"{push.host}/{push.repository}" if push.host else push.repository
    if len(found) != 1:
        return Match(push, None, f"{where} is not in the catalogue")
    image = found[0]
    if image.approval_status != ImageStatus.APPROVED:
        return Match(
            push,
            None,
            f"image {image.display_name} is {image.approval_status}; only approved images are "
            "checked, and nothing of it reaches a device",
        )
    return Match(push, image, None)


async def match_all(
    session: AsyncSession, pushes: Sequence[Push], settings: Settings, *, source: str
) -> list[Match]:
    matches = [await match(session, p, settings) for p in pushes]
    for image_id in dict.fromkeys(m.image.id for m in matches if m.image):
        audit.record(
            session,
            actor=f"webhook:{source}",
            action="webhook.received",
            entity_type="image",
            entity_id=image_id,
            after={"tags": [m.push.tag for m in matches if m.image and m.image.id == image_id]},
        )
    return matches
