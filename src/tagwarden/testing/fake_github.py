"""The fake's GitHub Packages API: a container package's versions.

``/orgs/{org}/…`` and ``/users/{user}/…`` (whichever the owner is; the other is 404 "Package not
found."), ``/organizations/{id}/…`` as the ``Link`` names them, ``page``/``per_page`` (default 30,
max 100), ``state=active``; ``name`` is the manifest digest, ``metadata.container.tags`` the tags,
newest first; an index's platform manifests are untagged versions of their own. A token is
always required. Every answer carries ``x-ratelimit-*``; past the limit 403 with remaining 0.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

from tagwarden.registry.manifests import INDEX_TYPES
from tagwarden.testing.fake_hub import json_response
from tagwarden.testing.fake_native import digits_of, github_error, integer
from tagwarden.testing.fake_records import Artifact, FakeRepository

if TYPE_CHECKING:
    from tagwarden.testing.fake_registry import FakeRegistry, Route

_DEFAULT_PER_PAGE = 30
_MAX_PER_PAGE = 100
_WINDOW = 3600
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
API = "https://api.github.com"  # only in the html/url fields, as GitHub writes them


def _budget(fake: FakeRegistry) -> tuple[dict[str, str], bool]:
    limit = fake.native.github_rate_limit
    if limit is None:
        return {}, False
    now = fake.clock.now()
    start, used = fake.native.github_window
    if now >= start + _WINDOW:
        start, used = now, 0
    over = used >= limit
    used = min(used + 1, limit)
    fake.native.github_window = (start, used)
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(limit - used if not over else 0),
        "x-ratelimit-used": str(used),
        "x-ratelimit-reset": str(math.ceil(start + _WINDOW)),
        "x-ratelimit-resource": "core",
    }, over


def _versions(repo: FakeRepository, children: bool) -> list[dict[str, Any]]:
    by_digest: dict[str, tuple[Artifact, list[str], datetime]] = {}
    for record in repo.newest_first():  # newest first: the first tag seen is the latest push
        artifact, tags, latest = by_digest.setdefault(
            record.artifact.digest, (record.artifact, [], record.last_updated)
        )
        tags.append(record.name)
    rows: list[tuple[str, list[str], datetime]] = []
    for digest, (artifact, tags, latest) in by_digest.items():
        rows.append((digest, tags, latest))
        if children and artifact.media_type in INDEX_TYPES:
            rows += [(image.digest, [], latest) for image in artifact.images]
    rows.sort(key=lambda v: (v[2], bool(v[1])), reverse=True)
    return [
        {"id": digits_of(d), "name": d, "url": f"{API}/packages/versions/{digits_of(d)}",
         "package_html_url": f"https://github.com/{repo.name}",
         "created_at": when.strftime(_STAMP), "updated_at": when.strftime(_STAMP),
         "html_url": f"https://github.com/{repo.name}/{digits_of(d)}",
         "metadata": {"package_type": "container", "container": {"tags": tags}}}
        for d, tags, when in rows
    ]  # fmt: skip


def _owner(fake: FakeRegistry, route: Route) -> tuple[str, str] | None:
    """(owner, how it was named) or None for a wrong kind of owner."""
    params = route.params
    if "org_id" in params:
        for name in {r.split("/", 1)[0] for r in fake.model.repositories}:
            if str(digits_of(_hex(name))) == params["org_id"]:
                return name, "organizations"
        return None
    owner, kind = unquote(params["owner"]), params["owner_kind"]
    is_user = owner in fake.native.github_users
    if (kind == "users") != is_user:
        return None
    return owner, kind


def _hex(name: str) -> str:
    return "".join(f"{b:02x}" for b in name.encode())[:8].ljust(8, "0")


async def list_versions(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    headers, over = _budget(fake)
    if over:
        return github_error(403, "API rate limit exceeded for user.", headers)
    if username is None:
        return github_error(401, "Requires authentication", headers)
    if route.kind in fake.native.disabled:
        return github_error(404, "Not Found", headers)
    owner = _owner(fake, route)
    package = unquote(route.params["package"])
    name = f"{owner[0]}/{package}" if owner else ""
    repo = fake.model.repositories.get(name)
    if owner is None or repo is None or name in fake.faults.missing:
        return github_error(404, "Package not found.", headers)
    query = request.query_params
    page, per_page = integer(query.get("page"), 1), integer(query.get("per_page"), 30)
    if page is None or per_page is None or page < 1 or per_page < 1:
        return github_error(400, "Invalid pagination", headers)
    per_page = min(per_page, _MAX_PER_PAGE)
    versions = _versions(repo, fake.native.github_lists_children)
    if query.get("state", "active") == "deleted":
        versions = []
    chunk = versions[(page - 1) * per_page : page * per_page]
    last = max(1, math.ceil(len(versions) / per_page))
    # Observed links name the organisation by its numeric id.
    if owner[1] == "users":
        prefix = f"/users/{quote(owner[0], safe='')}"
    else:
        prefix = f"/organizations/{digits_of(_hex(owner[0]))}"
    base = fake.public(request.url).replace(
        path=f"{prefix}/packages/container/{quote(package, safe='')}/versions", query=""
    )
    links = []

    def link(n: int, rel: str) -> str:
        return f'<{base}?per_page={per_page}&state=active&page={n}>; rel="{rel}"'

    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if links:
        headers["Link"] = ", ".join(links)
    return json_response(chunk, 200, headers)
