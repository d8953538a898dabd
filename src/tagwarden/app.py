"""The FastAPI application: routers, the error handler, and the lifespan that owns the engine."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tagwarden import __version__
from tagwarden.approvals.router import findings_router, images_router
from tagwarden.approvals.router import router as approvals_router
from tagwarden.apps.router import router as apps_router
from tagwarden.auth.router import audit_router
from tagwarden.auth.router import router as auth_router
from tagwarden.auth.secret import resolve_session_secret
from tagwarden.catalogue.router import router as catalogue_router
from tagwarden.config import Settings, get_settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.devices.fastpath import PollFastPath
from tagwarden.devices.index import DeviceIndex
from tagwarden.devices.presence import Presence
from tagwarden.devices.router import router as devices_router
from tagwarden.errors import install_error_handlers
from tagwarden.evidence.checker import SignatureChecker
from tagwarden.evidence.router import router as evidence_router
from tagwarden.limits import BodyLimitMiddleware
from tagwarden.monitor.router import router as monitor_router
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.notify.router import router as notify_router
from tagwarden.notify.worker import OutboxWorker
from tagwarden.observability import Metrics, MetricsMiddleware
from tagwarden.observability import router as ops_router
from tagwarden.openapi import install_openapi
from tagwarden.rollouts.router import router as rollouts_router
from tagwarden.rollouts.worker import RolloutMonitor
from tagwarden.rules.router import router as rules_router
from tagwarden.rules.worker import RulesWorker
from tagwarden.vulnerabilities.router import router as vulnerabilities_router
from tagwarden.web import STATIC_DIR
from tagwarden.web import router as web_router
from tagwarden.web.headers import SecurityHeaders
from tagwarden.webhooks.router import router as webhooks_router
from tagwarden.workers import BackgroundWorkers

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    registry_transport: httpx.AsyncBaseTransport | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the app. ``registry_transport`` lets tests and demos route registry traffic to the
    fake registry in-process. ``freeze_gc`` (a server process of its own: ``tagwarden serve``)
    moves what exists once the device index is loaded out of the collector's reach."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    registry_http = httpx.AsyncClient(
        transport=registry_transport,
        timeout=settings.registry_timeout_seconds,
        headers={"User-Agent": f"tagwarden/{__version__}"},
        follow_redirects=False,  # registry/transport.py follows them, checking every hop
    )
    metrics = Metrics()
    monitor = ImageMonitor(settings, sessionmaker, registry_http, on_result=metrics.record_check)

    app = FastAPI(
        title="tagwarden",
        version=__version__,
        description="Discovers new container image tags, gates them behind approval, and rolls "
        "approved tags out to devices.",
        lifespan=_lifespan(settings, engine, registry_http, monitor, freeze_gc=freeze_gc),
    )
    _install_state(app, settings, engine, sessionmaker, metrics, monitor)
    metrics.watch_budgets(monitor.budgets)
    # Innermost: the unchanged poll gets every header and metric a routed request gets.
    app.add_middleware(PollFastPath, state=app.state)
    # Added before the metrics, so it runs inside them: a refused body is still counted.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    install_openapi(app)
    _include_routers(app)
    return app


def _lifespan(
    settings: Settings,
    engine: AsyncEngine,
    registry_http: httpx.AsyncClient,
    monitor: ImageMonitor,
    *,
    freeze_gc: bool,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: the background workers, and the clients they share."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Read (or generate and store) the session key before the first page needs it.
        await resolve_session_secret(app)
        workers = BackgroundWorkers()
        # Background workers of each part start here, each behind its own setting, so an
        # API-only replica can run with all of them off.
        app.state.workers = workers
        if settings.monitor_enabled:
            workers.start("monitor", monitor.run_forever)
        if settings.rollout_worker_enabled:
            workers.start("rollouts", app.state.rollout_monitor.run_forever)
        # Always on: the device API buffers last-seen times in memory and this writes them.
        workers.start("device_presence", app.state.device_presence.run_forever)
        workers.start("device_index", app.state.device_index.run_forever)
        if freeze_gc:
            workers.start("gc_freeze", lambda: _freeze_gc_once_loaded(app.state.device_index))
        if settings.outbox_worker_enabled:
            workers.start("outbox", app.state.outbox.run_forever)
        if settings.rules_worker_enabled:
            workers.start("approval_rules", app.state.rules_worker.run_forever)
        try:
            yield
        finally:
            await workers.stop()
            await registry_http.aclose()
            await app.state.outbox.aclose()
            await engine.dispose()

    return lifespan


async def _freeze_gc_once_loaded(device_index: DeviceIndex) -> None:
    """The app, its libraries and the loaded index live as long as the process: frozen, a full
    collection (one about every second under polls) walks only what requests leave behind,
    not those ~200,000 objects (a ~60 ms pause, the poll's p99, before)."""
    await device_index.loaded.wait()
    gc.collect()
    gc.freeze()


def _install_state(
    app: FastAPI,
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    metrics: Metrics,
    monitor: ImageMonitor,
) -> None:
    """The app's shared parts: settings, database, metrics and the background workers."""
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.metrics = metrics
    app.state.monitor = monitor
    app.state.registry_clients = monitor.client
    app.state.signature_checker = SignatureChecker(sessionmaker, monitor.client)
    app.state.rollout_monitor = RolloutMonitor(settings, sessionmaker)
    app.state.device_presence = Presence(
        sessionmaker, flush_seconds=settings.device_last_seen_flush_seconds
    )
    app.state.device_index = DeviceIndex(
        engine, refresh_seconds=settings.device_index_refresh_seconds
    )
    app.state.outbox = OutboxWorker(settings, sessionmaker)
    app.state.rules_worker = RulesWorker(settings, sessionmaker)


def _include_routers(app: FastAPI) -> None:
    """Every part's routes; the order matters where paths overlap."""
    # First: requests are matched against the routes in order, and the fleet's polls are most
    # of the traffic (no other router's paths start with /api/v1/device).
    app.include_router(devices_router)
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(audit_router)
    # Fixed paths under /api/v1/images (approvals, monitor) before /api/v1/images/{image_id}.
    app.include_router(approvals_router)
    app.include_router(monitor_router)
    app.include_router(evidence_router)
    app.include_router(vulnerabilities_router)
    app.include_router(findings_router)
    # Before the catalogue's own routes, where its POST /api/v1/images always stood.
    app.include_router(images_router)
    app.include_router(catalogue_router)
    app.include_router(rollouts_router)
    app.include_router(apps_router)
    app.include_router(webhooks_router)
    app.include_router(rules_router)
    app.include_router(notify_router)
    # The admin pages and their local assets: no request leaves the server.
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
