"""An in-memory registry that answers as Docker Hub's Hub API and as an OCI v2 registry.

One model backs both APIs, so a tag has the same digests whichever way it is read. Mount it in
httpx for tests (``httpx.AsyncClient(transport=fake.transport())``) or serve it on a port
(:func:`tagwarden.testing.fake_server.serve`). Faults (``fake.faults``) can be changed while it
runs and every request is recorded in ``fake.stats``.

Paths: ``/v2/repositories/…`` and ``/v2/namespaces/…`` are the Hub API, ``/v2/auth/token`` the Hub
sign-in, ``/token`` the registry's token endpoint, and every other ``/v2/…`` the registry API. An
OCI repository literally named ``repositories/…`` would be shadowed; real ones live on other hosts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Literal
from urllib.parse import unquote

import httpx
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tagwarden.clock import Clock, SystemClock
from tagwarden.testing import fake_github, fake_harbor, fake_hub, fake_native, fake_oci, fake_quay
from tagwarden.testing.fake_auth import FakeAuth, OciAuth
from tagwarden.testing.fake_faults import Faults, RequestRecord, RequestStats, RetryStyle
from tagwarden.testing.fake_model import RegistryModel
from tagwarden.testing.fake_records import FakeRepository

Handler = Callable[["FakeRegistry", Request, "Route", "str | None"], Awaitable[Response]]
TagListStyle = Literal["distribution", "all", "quay"]

HUB_WINDOW_SECONDS = 60  # the Hub API limit is per minute


@dataclass(frozen=True, slots=True)
class Route:
    kind: str
    repository: str | None
    params: dict[str, str] = field(default_factory=dict)


_HUB_REPO = (
    r"(?:repositories/(?P<repository>[^/]+/[^/]+)"
    r"|namespaces/(?P<ns>[^/]+)/repositories/(?P<name>[^/]+))"
)
_OCI_REPO = r"^/v2/(?P<repository>.+)"
_READ = frozenset({"GET", "HEAD"})
_ROUTES: list[tuple[str, re.Pattern[str], frozenset[str], Handler]] = [
    ("hub_login", re.compile(r"^/v2/(?:auth/token|users/login)/?$"), frozenset({"POST"}),
     fake_hub.sign_in),
    ("hub_tags", re.compile(rf"^/v2/{_HUB_REPO}/tags/?$"), _READ, fake_hub.list_tags),
    ("hub_tag", re.compile(rf"^/v2/{_HUB_REPO}/tags/(?P<tag>[^/]+)/?$"), _READ, fake_hub.get_tag),
    ("oci_token", re.compile(r"^/token/?$"), frozenset({"GET", "POST"}), fake_oci.token),
    ("oci_base", re.compile(r"^/v2/?$"), _READ, fake_oci.base),
    ("oci_tags", re.compile(rf"{_OCI_REPO}/tags/list$"), frozenset({"GET"}), fake_oci.tag_list),
    ("oci_manifest", re.compile(rf"{_OCI_REPO}/manifests/(?P<reference>[^/]+)$"), _READ,
     fake_oci.manifest),
    ("oci_blob", re.compile(rf"{_OCI_REPO}/blobs/(?P<digest>[^/]+)$"), _READ, fake_oci.blob),
    ("oci_referrers", re.compile(rf"{_OCI_REPO}/referrers/(?P<digest>[^/]+)$"),
     frozenset({"GET"}), fake_oci.referrers),
]  # fmt: skip
# The native APIs match the request's path as sent (percent-encoded): Harbor encodes a
# repository's slashes twice and GitHub once, which a decoded path would lose.
_NATIVE_ROUTES: list[tuple[str, re.Pattern[str], frozenset[str], Handler]] = [
    ("quay_tags", re.compile(r"^/api/v1/repository/(?P<repository>.+?)/tag/?$"),
     frozenset({"GET"}), fake_quay.list_tags),
    ("harbor_artifacts", re.compile(
        r"^/api/v2\.0/projects/(?P<project>[^/]+)/repositories/(?P<name>[^/]+)/artifacts/?$"),
     frozenset({"GET"}), fake_harbor.list_artifacts),
    ("github_versions", re.compile(r"^/(?P<owner_kind>orgs|users)/(?P<owner>[^/]+)"
                                   r"/packages/container/(?P<package>[^/]+)/versions/?$"),
     frozenset({"GET"}), fake_github.list_versions),
    ("github_versions", re.compile(r"^/organizations/(?P<org_id>[0-9]+)"
                                   r"/packages/container/(?P<package>[^/]+)/versions/?$"),
     frozenset({"GET"}), fake_github.list_versions),
]  # fmt: skip
_MALFORMED_BODY = b'{"count": 3, "next": null, "results": [{"name": "7.2", "images": [{'


class FakeRegistry:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        hub_rate_limit: int | None = 180,
        hub_anonymous_offset_limit: int | None = 1000,
        oci_auth: OciAuth = "bearer",
        pull_limit: int | None = 100,
        pull_window_seconds: int = 21600,
        pull_retry_after: bool = False,
        tag_list_style: TagListStyle = "distribution",
        oci_default_page_size: int | None = None,
        oci_max_page_size: int = 1000,
        public_url: str | None = None,
        referrers_api: bool = True,
    ) -> None:
        """Defaults follow REGISTRY_FACTS: 180 Hub API requests a minute, 403 past offset 1,000
        for anonymous callers, 100 pulls per 6 h (only GETs count), no ``Retry-After`` on the
        pull-limit 429 (Docker does not document one), bearer-token auth on the registry API."""
        self.clock: Clock = clock or SystemClock()
        self.model = RegistryModel(self.clock)
        self.faults = Faults()
        self.stats = RequestStats()
        self.hub_rate_limit = hub_rate_limit
        self.hub_anonymous_offset_limit = hub_anonymous_offset_limit
        self.oci_auth: OciAuth = oci_auth
        self.pull_limit = pull_limit
        self.pull_window_seconds = pull_window_seconds
        self.pull_retry_after = pull_retry_after
        self.tag_list_style: TagListStyle = tag_list_style
        self.oci_default_page_size = oci_default_page_size
        self.oci_max_page_size = oci_max_page_size
        self.public_url = URL(public_url) if public_url else None
        self.referrers_api = referrers_api
        self.auth = FakeAuth(self.clock)
        self.native = fake_native.NativeState()
        self._hub_window = (0.0, 0)  # (window start, requests in it)
        self._pull_window = (0.0, 0)
        # Building content is the model's: tests reach it through the fake, signatures intact.
        self.add_repository = self.model.add_repository
        self.push_tag = self.model.push_tag
        self.repush_tag = self.model.repush_tag
        self.alias_tag = self.model.alias_tag
        self.put_blob = self.model.put_blob
        self.push_manifest = self.model.push_manifest
        self.delete_manifest = self.model.delete_manifest

    # -- the model, for tests ----------------------------------------------------------------

    def add_user(self, username: str, password: str) -> None:
        """An account for Hub sign-in, the token endpoint and Basic auth."""
        self.auth.users[username] = password

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self)

    # -- used by the handlers ----------------------------------------------------------------

    def visible_repository(self, name: str, username: str | None) -> FakeRepository | None:
        name = name.strip("/")
        repo = self.model.repositories.get(name)
        if repo is None or name in self.faults.missing or (repo.private and username is None):
            return None
        return repo

    def public(self, url: URL) -> URL:
        """The URL as clients should see it (``next`` and ``Link`` must be usable from outside)."""
        if self.public_url is None:
            return url
        return url.replace(scheme=self.public_url.scheme, netloc=self.public_url.netloc)

    def take_pull(self, method: str) -> tuple[dict[str, str], bool]:
        """Rate-limit headers for a manifest request, and whether it must be refused.

        Only a GET is a pull; a HEAD reads the budget without spending it.
        """
        if self.pull_limit is None:
            return {}, False  # unlimited accounts get no headers at all
        start, used = self._pull_state()
        over = False
        if method == "GET":
            if used >= self.pull_limit:
                over = True
            else:
                used += 1
                self._pull_window = (start, used)
        window = self.pull_window_seconds
        headers = {
            "ratelimit-limit": f"{self.pull_limit};w={window}",
            "ratelimit-remaining": f"{max(0, self.pull_limit - used)};w={window}",
            "docker-ratelimit-source": "127.0.0.1",
        }
        if over and self.pull_retry_after:
            wait = max(0, math.ceil(start + window - self.clock.now()))
            headers["Retry-After"] = str(wait)
        return headers, over

    def _pull_state(self) -> tuple[float, int]:
        start, used = self._pull_window
        now = self.clock.now()
        if used == 0 or now >= start + self.pull_window_seconds:
            start, used = now, 0
            self._pull_window = (start, used)
        return start, used

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to start; say so to whoever asks
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        arrived = self.clock.now()
        path = request.url.path
        raw = request.scope.get("raw_path") or path.encode()
        route, handler, methods = _match(path, raw.decode("latin-1").split("?", 1)[0])
        username: str | None = None
        if route is None or handler is None:
            response = fake_oci.oci_error(404, "NOT_FOUND", f"no such endpoint {path}")
        elif request.method not in methods:
            response = fake_oci.oci_error(405, "UNSUPPORTED", "method not allowed")
        else:
            if self.faults.latency_ms:
                await self.clock.sleep(self.faults.latency_ms / 1000)
            response, username = await self._serve(request, route, handler)
            if (
                response.status_code == 200
                and request.method != "HEAD"
                and self.faults.is_malformed(path, route.kind)
            ):
                headers = {k: v for k, v in response.headers.items() if k != "content-length"}
                response = Response(_MALFORMED_BODY, 200, headers=headers)
        self.stats.add(
            RequestRecord(
                at=arrived,
                method=request.method,
                path=path,
                query=request.url.query,
                kind=route.kind if route else "unknown",
                repository=route.repository if route else None,
                status=response.status_code,
                username=username,
            )
        )
        return response

    async def _serve(
        self, request: Request, route: Route, handler: Handler
    ) -> tuple[Response, str | None]:
        hub = route.kind.startswith("hub_")
        now = self.clock.now()
        hub_headers, over = self._count_hub_request(now) if hub else ({}, False)
        throttled = self.faults.throttle(route.kind, now)
        if throttled is not None:
            return self._too_many(hub, *throttled, hub_headers), None
        if over:
            reset = float(hub_headers["X-RateLimit-Reset"])
            return self._too_many(True, reset, "x-retry-after", hub_headers), None
        burst = self.faults.take_burst(route.kind)
        if burst is not None:
            if hub:
                body = {"message": "service unavailable"}
                return fake_hub.json_response(body, burst, hub_headers), None
            return fake_oci.oci_error(burst, "UNAVAILABLE", "service unavailable"), None
        if fake_native.is_native(route.kind):
            allowed, username = fake_native.identify(self, request, route.kind)
        else:
            allowed, username = self.auth.identify(
                request, route.kind, route.repository, self.oci_auth
            )
        if not allowed:
            return self._unauthorized(request, route), None
        response = await handler(self, request, route, username)
        response.headers.update(hub_headers)
        return response, username

    def _count_hub_request(self, now: float) -> tuple[dict[str, str], bool]:
        """Hub API headers for this request, and whether it is over the per-minute limit."""
        if self.hub_rate_limit is None:
            return {}, False
        start, used = self._hub_window
        if now >= start + HUB_WINDOW_SECONDS:
            start, used = now, 0
        used += 1
        self._hub_window = (start, used)
        headers = {
            "X-RateLimit-Limit": str(self.hub_rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.hub_rate_limit - used)),
            "X-RateLimit-Reset": str(math.ceil(start + HUB_WINDOW_SECONDS)),
        }
        return headers, used > self.hub_rate_limit

    def _too_many(
        self, hub: bool, until: float, style: RetryStyle | None, headers: dict[str, str]
    ) -> Response:
        style = style or ("x-retry-after" if hub else "retry-after")
        extra = dict(headers)
        if "X-RateLimit-Remaining" in extra:
            extra["X-RateLimit-Remaining"] = "0"
            extra["X-RateLimit-Reset"] = str(math.ceil(until))
        if style == "x-retry-after":
            extra["X-Retry-After"] = str(math.ceil(until))
        elif style == "retry-after":
            extra["Retry-After"] = str(math.ceil(until - self.clock.now()))
        elif style == "http-date":
            extra["Retry-After"] = formatdate(math.ceil(until), usegmt=True)
        if hub:
            return fake_hub.json_response(
                {"detail": "Rate limit exceeded", "error": False}, 429, extra
            )
        return fake_oci.oci_error(429, "TOOMANYREQUESTS", "Too Many Requests", extra)

    def _unauthorized(self, request: Request, route: Route) -> Response:
        if route.kind.startswith("hub_"):
            return fake_hub.json_response({"detail": "Invalid or expired token"}, 401)
        if fake_native.is_native(route.kind):
            return fake_native.unauthorized(route.kind)
        if self.oci_auth == "basic":
            challenge = 'Basic realm="fake-registry"'
        else:
            realm = str(self.public(request.url).replace(path="/token", query=""))
            challenge = f'Bearer realm="{realm}",service="fake-registry"'
            if route.repository:
                challenge += f',scope="repository:{route.repository}:pull"'
        return fake_oci.oci_error(
            401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}
        )


def _match(path: str, raw: str) -> tuple[Route | None, Handler | None, frozenset[str]]:
    for kind, pattern, methods, handler in _NATIVE_ROUTES:
        found = pattern.match(raw)
        if found is not None:
            groups = {k: v for k, v in found.groupdict().items() if v is not None}
            repository = groups.pop("repository", None)
            return (
                Route(kind, unquote(repository) if repository else None, groups),
                handler,
                methods,
            )
    for kind, pattern, methods, handler in _ROUTES:
        found = pattern.match(path)
        if found is None:
            continue
        groups = {k: v for k, v in found.groupdict().items() if v is not None}
        repository = groups.pop("repository", None)
        if "ns" in groups:
            repository = f"{groups.pop('ns')}/{groups.pop('name')}"
        return Route(kind, repository, groups), handler, methods
    return None, None, frozenset()
