"""The FastAPI application: routers, the error handler, and the lifespan that owns the engine."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tagwarden import __version__
from tagwarden.approvals.router import router as approvals_router
from tagwarden.audit.router import router as audit_router
from tagwarden.auth.router import router as auth_router
from tagwarden.catalogue.router import router as catalogue_router
from tagwarden.config import Settings, get_settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.errors import install_error_handlers
from tagwarden.observability import Metrics, metrics_middleware
from tagwarden.observability import router as ops_router
from tagwarden.workers import BackgroundWorkers

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers = BackgroundWorkers()
        # Background workers of each part start here, each behind its own setting, so an
        # API-only replica can run with all of them off.
        app.state.workers = workers
        try:
            yield
        finally:
            await workers.stop()
            await engine.dispose()

    app = FastAPI(
        title="tagwarden",
        version=__version__,
        description="Discovers new container image tags, gates them behind approval, and rolls "
        "approved tags out to devices.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.metrics = Metrics()
    app.middleware("http")(metrics_middleware(app.state.metrics))
    install_error_handlers(app)

    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(audit_router)
    # Fixed paths under /api/v1/images (approvals, monitor) before /api/v1/images/{image_id}.
    app.include_router(approvals_router)
    app.include_router(catalogue_router)
    # Routers of later parts (monitor, devices, rollouts, webhooks, web UI) are included below.
    return app
