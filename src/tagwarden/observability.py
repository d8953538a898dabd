"""Health and Prometheus metrics: request counts and latencies by route template."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy import text
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagwarden.approvals.history import latest_approved_sizes
from tagwarden.auth.deps import Engine, Session, Viewer

log = logging.getLogger(__name__)


class Metrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tagwarden_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tagwarden_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.checks = Counter(
            "tagwarden_monitor_checks_total",
            "Image checks by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.requests_created = Counter(
            "tagwarden_monitor_approval_requests_created_total",
            "Approval requests created by the monitor",
            registry=self.registry,
        )
        self.budget = Gauge(
            "tagwarden_registry_budget_remaining",
            "Requests left in the registry's rate-limit window, as its headers last said",
            ["host"],
            registry=self.registry,
        )
        self.image_bytes = Gauge(
            "tagwarden_image_compressed_bytes",
            "Compressed bytes (config + layers) per architecture of each image's most recently "
            "approved tag, from its size evidence",
            ["image", "architecture"],
            registry=self.registry,
        )
        self._budgets: Callable[[], dict[str, int | None]] = dict

    def record_check(self, result: Any) -> None:
        self.checks.labels("error" if result.error else "ok").inc()
        self.requests_created.inc(len(result.requests_created))

    def watch_budgets(self, read: Callable[[], dict[str, int | None]]) -> None:
        self._budgets = read

    def refresh(self) -> None:
        """Gauges read at scrape time, so they are never staler than the registry's headers."""
        for host, remaining in self._budgets().items():
            if remaining is not None:
                self.budget.labels(host).set(remaining)

    def set_image_sizes(self, found: list[tuple[str, str, int]]) -> None:
        """Replace every image size series: an image gone, or a tag superseded, leaves none."""
        self.image_bytes.clear()
        for image, architecture, size in found:
            self.image_bytes.labels(image, architecture).set(size)


def flat_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """Every route as (path template, methods), with included routers expanded."""
    try:  # FastAPI ≥ 0.16x includes routers lazily; older versions flatten them on include.
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:  # pragma: no cover - depends on the installed FastAPI
        routes = list(app.routes)
    return [
        (str(route.path), set(getattr(route, "methods", None) or ()))
        for route in routes
        if getattr(route, "path", None)
    ]


class RouteTemplates:
    """Maps a request path to its route template, for metric labels.

    Labels use the template (/api/v1/images/{image_id}), never the raw path: ids would explode the
    number of series.
    """

    def __init__(self) -> None:
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def template(self, app: FastAPI, path: str) -> str:
        if self._compiled is None:
            self._compiled = [
                (compile_path(template)[0], template) for template, _ in flat_routes(app)
            ]
        for regex, template in self._compiled:
            if regex.match(path):
                return template
        return "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by route template.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware wraps each response in a stream and
    a task, which capped even a constant endpoint at a fraction of its speed (the device poll is
    the hot path: bench/device_state.py).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The router has matched the request already (a device poll is the hot path);
            # the template scan is for what it did not match (404s, mounts).
            matched = getattr(scope.get("route"), "path", None)
            app: FastAPI = scope["app"]
            route = matched or self.templates.template(app, scope["path"])
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)


router = APIRouter(tags=["operations"])


async def _metrics(request: Request) -> Metrics:
    app_metrics: Metrics = request.app.state.metrics
    return app_metrics


AppMetrics = Annotated[Metrics, Depends(_metrics)]


@router.get("/healthz")
async def healthz(engine: Engine) -> JSONResponse:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        # Anyone may call /healthz: the error's type only; its text (host, user, SQL) is logged.
        log.warning("health check: the database is unreachable", exc_info=True)
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", response_class=Response)
async def metrics(app_metrics: AppMetrics, session: Session, _: Viewer) -> Response:
    app_metrics.refresh()
    # Read at scrape time, like the budgets: one query over each image's newest approved tag.
    app_metrics.set_image_sizes(await latest_approved_sizes(session))
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
