"""``create_app()``: the FastAPI application. The model, the database engine and the spool are
made in the lifespan (never at import). Workers run the model in ONNX Runtime and never import
torch."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import SQLAlchemyError

from digits.api import errors
from digits.api.holder import ModelHolder, serving
from digits.api.large_images import LargeImages
from digits.api.memory import SessionMemory
from digits.api.metrics import Metrics
from digits.api.middleware import RequestContextMiddleware
from digits.api.number_store import NumberStore
from digits.api.ratelimit import RateLimitMiddleware
from digits.api.routes import admin, health, models, numbers, predictions, sessions, stats
from digits.api.sessions import HEADER as SESSION_HEADER
from digits.api.sessions import make_authority
from digits.api.store import PredictionStore
from digits.api.supervisor import die_with_supervisor
from digits.config import Settings, get_settings
from digits.db import crud
from digits.db.migrate import upgrade_head
from digits.db.models import utcnow
from digits.db.session import Database, is_connection_error
from digits.db.spool import Spool
from digits.logs import configure_logging
from digits.loop.registry import Registry
from digits.predict import Predictor

logger = logging.getLogger(__name__)

REPLAY_INTERVAL_S = 2.0
MODEL_CHECK_INTERVAL_S = 2.0
RETENTION_INTERVAL_S = 3600.0


def _migrate(settings: Settings) -> bool:
    try:
        upgrade_head(settings.resolved_database_url)
    except SQLAlchemyError as exc:
        if not is_connection_error(exc):
            raise
        logger.warning("database unreachable at startup; migrating later, spooling meanwhile")
        return False
    return True


def _apply_retention(store: PredictionStore, days: int) -> None:
    with store.database.write() as session:
        purged = crud.purge_images(session, older_than=utcnow() - timedelta(days=days))
    if purged:
        logger.info("retention dropped stored drawings", extra={"purged": purged, "days": days})


class _Maintenance:
    """The background loop: spool replay, model file watch, retention."""

    def __init__(self, app: FastAPI, settings: Settings, migrated: bool) -> None:
        self.app = app
        self.settings = settings
        self.migrated = migrated
        self.clock = {"model": 0.0, "retention": -RETENTION_INTERVAL_S}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REPLAY_INTERVAL_S)
            try:
                await asyncio.to_thread(self.tick, loop.time())
            except Exception:  # the loop must outlive any one failure; it is logged
                logger.exception("maintenance step failed")

    def tick(self, now: float) -> None:
        store: PredictionStore = self.app.state.store
        try:
            if not self.migrated:
                self.migrated = _migrate(self.settings)
                store.schema_ready = self.app.state.sessions.schema_ready = self.migrated
            if self.migrated:
                store.replay()
                if self.settings.retention_days is not None and (
                    now - self.clock["retention"] >= RETENTION_INTERVAL_S
                ):
                    _apply_retention(store, self.settings.retention_days)
                    self.clock["retention"] = now
        except SQLAlchemyError as exc:
            if not is_connection_error(exc):
                raise
            logger.debug("database still unreachable; spool kept (%d)", store.spool.depth)
        if now - self.clock["model"] >= MODEL_CHECK_INTERVAL_S:
            self.clock["model"] = now
            self.app.state.holder.reload_if_changed()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's generated document, with the request bodies of the content-type-chosen POST
    operations (which it keeps one per path and method) gathered into the one POST."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        for route in predictions.POST_BODIES + numbers.POST_BODIES:
            alone = get_openapi(title=app.title, version=app.version, routes=[route])
            body = alone["paths"][route.path]["post"]["requestBody"]
            spec["paths"][route.path]["post"]["requestBody"]["content"].update(body["content"])
        for path, parameter, reads in (
            ("/api/predictions", "prediction_id", ("", "/image", "/input")),
            ("/api/numbers", "number_id", ("", "/image")),
        ):
            created = spec["paths"][path]["post"]["responses"]["201"]
            created["links"] = _links_as_the_new_session(spec, path, parameter, reads)
        app.openapi_schema = spec
    return app.openapi_schema


def _links_as_the_new_session(
    spec: dict[str, Any], path: str, parameter: str, reads: tuple[str, ...]
) -> dict[str, Any]:
    """From a 201 to reading and correcting what it made, as the session the POST made (its
    ``session_token``; a POST that sent a token answers none)."""
    links = {}
    for read in reads:
        for operation in spec["paths"][f"{path}/{{{parameter}}}{read}"].values():
            links[operation["operationId"]] = {
                "operationId": operation["operationId"],
                "parameters": {
                    f"path.{parameter}": "$response.body#/id",
                    f"header.{SESSION_HEADER}": "$response.body#/session_token",
                },
            }
    return links


def create_app(
    settings: Settings | None = None,
    *,
    predictor: Predictor | None = None,
    run_maintenance: bool = True,
) -> FastAPI:
    """The API. ``predictor`` replaces loading from ``settings.model_path`` (tests)."""
    settings = settings or get_settings()
    # Here rather than in the lifespan so that uvicorn's own startup lines are JSON too.
    configure_logging(settings.log_level, json_lines=settings.log_json)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        die_with_supervisor()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrated = await asyncio.to_thread(_migrate, settings)
        database = Database(settings.resolved_database_url)
        registry = Registry(database)
        # After the migration: the registry's tables must exist to read the active model.
        holder = (
            ModelHolder(lambda: predictor)
            if predictor
            else await asyncio.to_thread(ModelHolder, *serving(settings, registry))
        )
        spool = Spool(settings.resolved_spool_dir)
        spool.open()
        store = PredictionStore(database, spool, metrics)
        store.schema_ready = migrated
        app.state.sessions = make_authority(settings, database)
        app.state.sessions.schema_ready = migrated
        app.state.large_images = LargeImages(
            max_bytes=settings.max_body_bytes,
            max_pixels=settings.max_pixels,
            stored_side=settings.stored_image_max_side,
        )
        app.state.holder = holder
        app.state.database = database
        app.state.registry = registry
        app.state.store = store
        app.state.numbers = NumberStore(store)
        app.state.memory = SessionMemory(
            store, enabled=settings.session_memory, size=settings.session_memory_size
        )
        task = None
        if run_maintenance:
            maintenance = _Maintenance(app, settings, migrated)
            task = asyncio.create_task(maintenance.run(), name="digits-maintenance")
        logger.info(
            "api ready",
            extra={
                "model_version": holder.predictor.version,
                "database": database.url.render_as_string(),
            },
        )
        # The runtime, the model and the app live as long as the process: frozen, they are left
        # out of every full collection, which would otherwise walk them all and stall a request.
        # For the tail only: the mean CPU per request is the same either way (trick_bench.py).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(SQLAlchemyError):
                if spool.depth:
                    await asyncio.to_thread(store.replay)
            spool.close()
            app.state.large_images.close()
            database.dispose()
            metrics.process_exited()

    app = FastAPI(
        title="Digits",
        summary="Handwritten digit recognition: predictions, corrections, history, statistics.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    errors.install(app)
    routers = (predictions, numbers, sessions, admin, stats, models, health)
    for module in routers:
        app.include_router(module.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Content-Type", "X-Request-ID", "Authorization", SESSION_HEADER],
            expose_headers=["X-Request-ID", "Location"],
        )
    if settings.rate_limit:
        app.add_middleware(
            RateLimitMiddleware,
            per_minute=settings.rate_limit,
            trusted_proxies=settings.trusted_proxies,
        )
    app.add_middleware(  # outermost: every answer, a 429 too, has its request id and log line
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        trusted_hosts=settings.trusted_hosts,
        trusted_proxies=settings.trusted_proxies,
    )
    return app
