"""The fake's Quay REST API: ``GET /api/v1/repository/{namespace}/{repository}/tag/``.

As quay/quay's ``endpoints/api/tag.py``: ``limit`` (default 50, clamped to 1..100), ``page``,
``onlyActiveTags``, ``specificTag``, ``filter_tag_name`` (``like:``/``eq:``, else 400); newest
first (``lifetime_start`` descending, then name); ``has_additional`` paging with no Link and no
total; ``last_modified`` in RFC 2822 with a ``-0000`` zone. Public repositories answer
anonymously; a private one 401 to anonymous callers; a missing one 404.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from tagwarden.registry.manifests import INDEX_TYPES
from tagwarden.testing.fake_hub import json_response
from tagwarden.testing.fake_native import integer, quay_error
from tagwarden.testing.fake_records import FakeRepository, TagRecord

if TYPE_CHECKING:
    from tagwarden.testing.fake_registry import FakeRegistry, Route

_DEFAULT_LIMIT = 50
_MAX_LIMIT = 100


def tag_json(record: TagRecord) -> dict[str, Any]:
    start = int(record.last_updated.timestamp())
    return {
        "name": record.name,
        "reversion": False,
        "start_ts": start,
        "manifest_digest": record.artifact.digest,
        "is_manifest_list": record.artifact.media_type in INDEX_TYPES,
        # Compressed layer bytes: what the images' layers and configs add up to.
        "size": sum(image.size for image in record.artifact.images) or None,
        "last_modified": formatdate(start),  # email.utils: "… -0000", as Quay's formatdate
    }


def _filtered(records: list[TagRecord], query: Any) -> list[TagRecord] | None:
    if specific := query.get("specificTag"):
        records = [r for r in records if r.name == specific]
    if wanted := query.get("filter_tag_name"):
        how, _, value = wanted.partition(":")
        if how == "like":
            records = [r for r in records if value in r.name]
        elif how == "eq":
            records = [r for r in records if r.name == value]
        else:
            return None
    return records


async def list_tags(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    if route.kind in fake.native.disabled:
        return quay_error(404, "Not Found")
    name = route.repository or ""
    repo: FakeRepository | None = fake.model.repositories.get(name)
    if repo is None or name in fake.faults.missing:
        return quay_error(404, "Not Found")
    if repo.private and username is None:
        return quay_error(401, "Requires authentication")
    query = request.query_params
    limit = integer(query.get("limit"), _DEFAULT_LIMIT)
    page = integer(query.get("page"), 1)
    if limit is None or page is None:
        return quay_error(400, "Invalid request")
    limit = min(max(limit, 1), _MAX_LIMIT)
    page = max(page, 1)
    # Lifetime start descending, then name: newest first.
    records = _filtered(repo.newest_first(), query)
    if records is None:
        return quay_error(400, "Invalid filter_tag_name")
    offset = (page - 1) * limit
    chunk = records[offset : offset + limit]
    return json_response(
        {
            "tags": [tag_json(r) for r in chunk],
            "page": page,
            "has_additional": offset + limit < len(records),
        }
    )
