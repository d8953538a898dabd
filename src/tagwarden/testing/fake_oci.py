"""The fake's OCI distribution API: tag list, manifests, blobs and the token endpoint."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from tagwarden.registry.manifests import INDEX_TYPES, OCI_INDEX, OCI_MANIFEST
from tagwarden.testing.fake_hub import json_response

if TYPE_CHECKING:
    from tagwarden.testing.fake_registry import FakeRegistry, Route

API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}


def oci_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(
        {"errors": [{"code": code, "message": message, "detail": None}]},
        status,
        {**API_VERSION, **(headers or {})},
    )


def _respond(
    request: Request, content: bytes, media_type: str, headers: dict[str, str]
) -> Response:
    """GET gets the bytes; HEAD gets the same headers, Content-Length included, and no body."""
    headers = {**API_VERSION, **headers, "Content-Length": str(len(content))}
    body = b"" if request.method == "HEAD" else content
    return Response(body, 200, headers=headers, media_type=media_type)


async def base(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    return json_response({}, 200, API_VERSION)


async def tag_list(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    name = route.repository or ""
    repo = fake.visible_repository(name, username)
    if repo is None:
        return oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
    tags = sorted(repo.tags)  # lexical, as the spec says
    query = request.query_params
    if fake.tag_list_style == "all":
        # Docker Hub's registry ignores n and returns everything in one response.
        return json_response({"name": name, "tags": tags}, 200, API_VERSION)
    raw_n = query.get("n")
    try:
        n = int(raw_n) if raw_n not in (None, "") else fake.oci_default_page_size
    except ValueError:
        n = -1
    if n is not None and n < 0:
        return oci_error(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
    if n is not None:
        n = min(n, fake.oci_max_page_size)
    last = query.get("last")
    if fake.tag_list_style == "quay" and query.get("next_page"):
        last = base64.urlsafe_b64decode(query["next_page"].encode()).decode()
    if last is not None:
        tags = [t for t in tags if t > last]  # exclusive
    if n == 0:
        return json_response({"name": name, "tags": []}, 200, API_VERSION)
    page = tags if n is None else tags[:n]
    headers = dict(API_VERSION)
    if n is not None and len(tags) > n:
        if fake.tag_list_style == "quay":
            token = base64.urlsafe_b64encode(page[-1].encode()).decode()
            link = str(fake.public(request.url).replace(query=f"next_page={token}&n={n}"))
        else:
            # distribution: a path, relative to the registry (registry/handlers/tags.go).
            link = f"/v2/{name}/tags/list?last={page[-1]}&n={n}"
        headers["Link"] = f'<{link}>; rel="next"'
    return json_response({"name": name, "tags": page}, 200, headers)


def _accepts(request: Request, media_type: str) -> bool:
    accepted = {
        part.split(";")[0].strip().lower()
        for part in request.headers.get("accept", "").split(",")
        if part.strip()
    }
    return media_type in accepted or "*/*" in accepted


async def manifest(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    name = route.repository or ""
    repo = fake.visible_repository(name, username)
    if repo is None:
        return oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
    reference = route.params["reference"]
    digest = reference if reference.startswith("sha256:") else None
    if digest is None:
        record = repo.tags.get(reference)
        digest = record.artifact.digest if record else None
    stored = fake.model.manifests.get(digest) if digest else None
    if digest is None or stored is None:
        return oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
    media_type, content = stored
    if (media_type in INDEX_TYPES or media_type == OCI_MANIFEST) and not _accepts(
        request, media_type
    ):
        kind = "OCI index" if media_type in INDEX_TYPES else "OCI manifest"
        return oci_error(
            404, "MANIFEST_UNKNOWN", f"{kind} found, but accept header does not support it"
        )
    budget, over = fake.take_pull(request.method)
    if over:
        return oci_error(
            429,
            "TOOMANYREQUESTS",
            "You have reached your unauthenticated pull rate limit. "
            "https://www.docker.com/increase-rate-limit",
            budget,
        )
    headers = {"Docker-Content-Digest": digest, "Etag": f'"{digest}"', **budget}
    if request.headers.get("if-none-match", "").strip('"') == digest:
        return Response(b"", 304, headers={**API_VERSION, **headers})
    return _respond(request, content, media_type, headers)


async def referrers(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    """``GET /v2/<name>/referrers/<digest>`` (OCI 1.1): always an index, empty when nothing
    refers; ``artifactType`` filters and says so. With ``fake.referrers_api`` off the route
    answers 404, as registries without the API do, so clients use the fallback tag."""
    if not fake.referrers_api:
        return oci_error(404, "NOT_FOUND", "page not found")
    if fake.visible_repository(route.repository or "", username) is None:
        return oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
    digest = route.params["digest"]
    entries = [
        e for e in fake.model.referrers.get(digest, []) if e["digest"] in fake.model.manifests
    ]
    headers = dict(API_VERSION)
    wanted = request.query_params.get("artifactType")
    if wanted:
        entries = [e for e in entries if e.get("artifactType") == wanted]
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return Response(json.dumps(body).encode(), 200, headers=headers, media_type=OCI_INDEX)


async def blob(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    if fake.visible_repository(route.repository or "", username) is None:
        return oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
    digest = route.params["digest"]
    content = fake.model.blobs.get(digest)
    if content is None:
        return oci_error(404, "BLOB_UNKNOWN", "blob unknown to registry")
    headers = {"Docker-Content-Digest": digest, "Etag": f'"{digest}"'}
    return _respond(request, content, "application/octet-stream", headers)


async def token(
    fake: FakeRegistry, request: Request, route: Route, username: str | None
) -> Response:
    """``GET /token?service=…&scope=…`` → a bearer token for the scopes this caller may pull;
    ``POST`` with a form (``grant_type=refresh_token``) trades an identity token for one."""
    scopes = request.query_params.getlist("scope")
    if request.method == "POST":
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        refresh = form.get("refresh_token", [""])[0]
        username = fake.native.identity_tokens.get(refresh)
        if form.get("grant_type") != ["refresh_token"] or username is None:
            return json_response({"details": "invalid refresh token"}, 401)
        scopes = form.get("scope", [])
    elif request.headers.get("authorization") and username is None:
        username = _oauth_user(fake, request.headers["authorization"])
        if username is None:
            return json_response({"details": "incorrect username or password"}, 401)
    granted = set()
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind != "repository" or "pull" not in actions.split(","):
            continue
        repo = fake.model.repositories.get(name)
        # Like Docker Hub: a token is always issued, with empty access where pulling is denied.
        if repo is None or not repo.private or username is not None:
            granted.add(name)
    value, lifetime = fake.auth.issue_oci_token(username, frozenset(granted))
    return json_response(
        {
            "token": value,
            "access_token": value,
            "expires_in": lifetime,
            "issued_at": fake.model.now().isoformat().replace("+00:00", "Z"),
        }
    )


def _oauth_user(fake: FakeRegistry, authorization: str) -> str | None:
    """Quay's ``$oauthtoken`` login: Basic with that user name and an OAuth token as password."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, secret = base64.b64decode(credential).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return fake.native.api_tokens.get(secret) if user == "$oauthtoken" else None
