"""The fake's Docker Hub Hub API: tag listing, single tag and sign-in, shaped like the real JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from tagwarden.testing.fake_records import FakeRepository, TagRecord, rfc3339

if TYPE_CHECKING:
    from tagwarden.testing.fake_registry import FakeRegistry, Route

OFFSET_LIMIT_MESSAGE = "pagination offset too large for anonymous requests; sign in to page further"
NOT_FOUND_MESSAGE = "httperror 404: object not found"
_CREATOR = 7483000
FAKE_PUSHER = "fake-registry"  # the Hub's last_updater_username for every fake tag
_MAX_PAGE_SIZE = 100  # "Defaults to 10. Max of 100."; larger values are silently capped
_DEFAULT_PAGE_SIZE = 10


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(document).encode(),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def hub_error(status: int, message: str, errinfo: dict[str, str] | None = None) -> Response:
    return json_response({"message": message, "errinfo": errinfo or {}}, status)


def not_found(repository: str) -> Response:
    namespace, _, name = repository.partition("/")
    return hub_error(404, NOT_FOUND_MESSAGE, {"namespace": namespace, "repository": name})


def tag_json(repo: FakeRepository, record: TagRecord) -> dict[str, Any]:
    """One ``results[]`` entry, with the fields real responses carry (not the published schema:
    ``images`` is a list and the status field is ``tag_status``)."""
    digits = (0, 6, 9)[record.hub_id % 3]
    stamp = rfc3339(record.last_updated, digits)
    images: list[dict[str, Any]] = []
    for image in record.artifact.images:
        images.append(
            {
                "architecture": image.spec.architecture,
                "features": "",
                "variant": image.spec.variant,
                "digest": image.digest,
                "os": image.spec.os,
                "os_features": "",
                "os_version": None,
                "size": image.size,
                "status": "active",
                "last_pulled": stamp,
                "last_pushed": stamp,
            }
        )
    for image in record.artifact.images:
        if image.attestation_digest:
            images.append(
                {
                    "architecture": "unknown",
                    "features": "",
                    "variant": None,
                    "digest": image.attestation_digest,
                    "os": "unknown",
                    "os_features": "",
                    "os_version": None,
                    "size": image.attestation_size,
                    "status": "active",
                    "last_pulled": stamp,
                    "last_pushed": stamp,
                }
            )
    entry: dict[str, Any] = {
        "creator": _CREATOR,
        "id": record.hub_id,
        "images": images,
        "last_updated": stamp,
        "last_updater": _CREATOR,
        "last_updater_username": FAKE_PUSHER,
        "name": record.name,
        "repository": repo.hub_id,
        "full_size": sum(image.size for image in record.artifact.images),
        "v2": True,
        "tag_status": "active",
        "tag_last_pulled": stamp,
        "tag_last_pushed": stamp,
        "media_type": record.artifact.media_type,
        "content_type": "image",
        "digest": record.artifact.digest,
    }
    if not record.hub_digest:
        del entry["digest"]  # an old push: the registry API (HEAD) still names it
    return entry


def _ordered(repo: FakeRepository, ordering: str | None) -> list[TagRecord]:
    # Scripts rely on ordering=last_updated giving the newest first; the reverse is the
    # leading minus (hub-tool sends both), kept so a client that assumes the other can be tested.
    records = repo.newest_first()
    if ordering == "-last_updated":
        records.reverse()
    elif ordering in ("name", "-name"):
        records.sort(key=lambda r: r.name, reverse=ordering == "-name")
    return records


def _int(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return None


async def list_tags(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    repo = fake.visible_repository(route.repository or "", username)
    if repo is None:
        return not_found(route.repository or "")
    if request.method == "HEAD":
        return Response(b"", 200)
    query = request.query_params
    page = _int(query.get("page"), 1)
    page_size = _int(query.get("page_size"), _DEFAULT_PAGE_SIZE)
    if page is None or page < 1 or page_size is None or page_size < 1:
        return hub_error(400, "httperror 400: invalid pagination parameters")
    page_size = min(page_size, _MAX_PAGE_SIZE)
    limit = fake.hub_anonymous_offset_limit
    if username is None and limit is not None and page * page_size > limit:
        return hub_error(403, OFFSET_LIMIT_MESSAGE)
    records = _ordered(repo, query.get("ordering"))
    if name_filter := query.get("name"):
        records = [r for r in records if name_filter in r.name]
    offset = (page - 1) * page_size
    if page > 1 and offset >= len(records):
        return not_found(repo.name)  # asking past the end is a 404 on Hub, not an empty page
    url = fake.public(request.url)
    more = offset + page_size < len(records)
    return json_response(
        {
            "count": len(records),
            "next": str(url.include_query_params(page=page + 1)) if more else None,
            "previous": str(url.include_query_params(page=page - 1)) if page > 1 else None,
            "results": [tag_json(repo, r) for r in records[offset : offset + page_size]],
        }
    )


async def get_tag(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    repo = fake.visible_repository(route.repository or "", username)
    record = repo.tags.get(route.params["tag"]) if repo else None
    if repo is None or record is None:
        return not_found(route.repository or "")
    if request.method == "HEAD":
        return Response(b"", 200)
    return json_response(tag_json(repo, record))


async def sign_in(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return json_response({"detail": "JSON parse error"}, 400)
    legacy = request.url.path.rstrip("/").endswith("/users/login")
    who = body.get("username" if legacy else "identifier") if isinstance(body, dict) else None
    secret = body.get("password" if legacy else "secret") if isinstance(body, dict) else None
    if (
        not isinstance(who, str)
        or not isinstance(secret, str)
        or not fake.auth.check_user(who, secret)
    ):
        return json_response({"detail": "Incorrect authentication credentials", "error": True}, 401)
    token = fake.auth.issue_hub_token(who)
    return json_response({"token": token} if legacy else {"access_token": token})
