"""The fake's Harbor v2.0 API: ``GET /api/v2.0/projects/{p}/repositories/{r}/artifacts``.

As goharbor/harbor's ``handler/artifact.go``: one entry per artifact with every tag naming it,
``push_time`` descending (then ``id``), ``page``/``page_size`` (default 10, max 100),
``X-Total-Count`` and a relative ``Link`` (``rel="next"``/``rel="prev"`` joined by ``" , "``),
``q=tags=*|nil|~v|v``, ``with_tag`` (default true) and ``with_scan_overview``. The repository
name comes encoded twice (``a%252Fb``). Private projects answer 401 to anonymous callers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from tagwarden.registry.manifests import INDEX_TYPES, OCI_CONFIG
from tagwarden.testing.fake_hub import json_response
from tagwarden.testing.fake_native import digits_of, harbor_error, integer
from tagwarden.testing.fake_records import Artifact, FakeRepository, TagRecord

if TYPE_CHECKING:
    from tagwarden.testing.fake_registry import FakeRegistry, Route

_DEFAULT_PAGE_SIZE = 10
_MAX_PAGE_SIZE = 100
_NEVER = "0001-01-01T00:00:00.000Z"
REPORT_TYPE = "application/vnd.security.vulnerability.report; version=1.1"


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def scan_overview(artifact: Artifact) -> dict[str, Any]:
    """A deterministic overview: a few findings derived from the digest."""
    n = digits_of(artifact.digest)
    critical, high = n % 3, n % 7
    summary = {"Critical": critical, "High": high} if critical or high else {}
    severity = "Critical" if critical else ("High" if high else "None")
    return {
        REPORT_TYPE: {
            "report_id": f"report-{n}",
            "scan_status": "Success",
            "severity": severity,
            "duration": 3,
            "complete_percent": 100,
            "start_time": stamp(artifact.created),
            "end_time": stamp(artifact.created),
            "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.50.0"},
            "summary": {"total": critical + high, "fixable": high, "summary": summary},
        }
    }


def _references(artifact: Artifact, parent: int) -> list[dict[str, Any]]:
    refs = []
    for image in artifact.images:
        platform: dict[str, Any] = {"architecture": image.spec.architecture, "os": image.spec.os}
        if image.spec.variant:
            platform["variant"] = image.spec.variant
        refs.append((image.digest, platform))
        if image.attestation_digest:
            refs.append((image.attestation_digest, {"architecture": "unknown", "os": "unknown"}))
    return [
        {"parent_id": parent, "child_id": digits_of(d), "child_digest": d, "platform": p,
         "annotations": {}, "urls": []}
        for d, p in refs
    ]  # fmt: skip


def artifact_json(
    repo: FakeRepository, artifact: Artifact, tags: list[TagRecord], *, scan: bool
) -> dict[str, Any]:
    ident = digits_of(artifact.digest)
    index = artifact.media_type in INDEX_TYPES
    pushed = min(t.last_updated for t in tags)
    entry: dict[str, Any] = {
        "id": ident, "type": "IMAGE", "media_type": OCI_CONFIG,
        "manifest_media_type": artifact.media_type, "artifact_type": OCI_CONFIG,
        "project_id": repo.hub_id % 1000, "repository_id": repo.hub_id,
        "repository_name": repo.name,
        "digest": artifact.digest,
        "size": sum(i.size + i.manifest_size for i in artifact.images),
        "push_time": stamp(pushed), "pull_time": _NEVER, "annotations": {}, "labels": None,
        "references": _references(artifact, ident) if index else None,
        "extra_attrs": {} if index else {
            "architecture": artifact.images[0].spec.architecture,
            "os": artifact.images[0].spec.os,
            "created": stamp(artifact.created), "author": "fake-registry", "config": {},
        },
        "tags": [
            {"id": t.hub_id, "repository_id": repo.hub_id, "artifact_id": ident, "name": t.name,
             "push_time": stamp(t.last_updated), "pull_time": _NEVER, "immutable": False}
            for t in tags
        ],
        "addition_links": {"build_history": {"href": "…/additions/build_history",
                                             "absolute": False}},
    }  # fmt: skip
    if scan:
        entry["scan_overview"] = scan_overview(artifact)
    return entry


def _matches(tags: list[TagRecord], q: str | None) -> bool:
    if not q:
        return True
    for clause in q.split(","):
        key, _, value = clause.partition("=")
        if key.strip() != "tags":
            continue  # labels, base, times: not modelled, not filtered
        value = value.strip()
        if value == "*" and not tags:
            return False
        if value == "nil" and tags:
            return False
        if value.startswith("~") and not any(value[1:] in t.name for t in tags):
            return False
        exact = value not in ("*", "nil") and not value.startswith("~")
        if exact and not any(t.name == value for t in tags):
            return False
    return True


def _grouped(repo: FakeRepository) -> list[tuple[Artifact, list[TagRecord]]]:
    by_digest: dict[str, tuple[Artifact, list[TagRecord]]] = {}
    for record in repo.newest_first():
        by_digest.setdefault(record.artifact.digest, (record.artifact, []))[1].append(record)
    groups = list(by_digest.values())
    # push_time descending, then id descending (Harbor's default order).
    groups.sort(
        key=lambda g: (min(t.last_updated for t in g[1]), digits_of(g[0].digest)), reverse=True
    )
    return groups


async def list_artifacts(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    if route.kind in fake.native.disabled:
        return harbor_error(404, "NOT_FOUND", "page not found")
    project, name = route.params["project"], unquote(unquote(route.params["name"]))
    full = f"{unquote(project)}/{name}"
    repo = fake.model.repositories.get(full)
    if repo is None or full in fake.faults.missing:
        return harbor_error(404, "NOT_FOUND", f"repository {full} not found")
    if repo.private and username is None:
        return harbor_error(401, "UNAUTHORIZED", "unauthorized")
    query = request.query_params
    page = integer(query.get("page"), 1)
    size = integer(query.get("page_size"), _DEFAULT_PAGE_SIZE)
    if page is None or size is None or page < 1 or size < 1:
        return harbor_error(400, "BAD_REQUEST", "invalid page or page_size")
    size = min(size, _MAX_PAGE_SIZE)
    groups = [g for g in _grouped(repo) if _matches(g[1], query.get("q"))]
    with_tag = query.get("with_tag", "true").lower() != "false"
    scan = query.get("with_scan_overview", "false").lower() == "true"
    chunk = groups[(page - 1) * size : page * size]
    body = [
        artifact_json(repo, artifact, tags if with_tag else [], scan=scan)
        for artifact, tags in chunk
    ]
    headers = {"X-Total-Count": str(len(groups))}
    links = []
    others = "&".join(f"{k}={v}" for k, v in query.items() if k not in ("page", "page_size"))
    base = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    base = base.split("?", 1)[0]
    tail = f"&{others}" if others else ""
    if page > 1:
        links.append(f'<{base}?page={page - 1}&page_size={size}{tail}>; rel="prev"')
    if page * size < len(groups):
        links.append(f'<{base}?page={page + 1}&page_size={size}{tail}>; rel="next"')
    if links:
        headers["Link"] = " , ".join(links)
    return json_response(body, 200, headers)
