"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from digits.api.deps import HolderDep, MetricsDep, StoreDep
from digits.api.metrics import CONTENT_TYPE
from digits.schemas import DependencyCheck, Readiness

router = APIRouter(tags=["health"])


class DatabaseNotMigratedError(Exception):
    """The database was unreachable at startup and has not been migrated yet."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (says nothing about the model or the database)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(holder: HolderDep, store: StoreDep) -> JSONResponse:
    """200 when the model is loaded and predictions can be stored (in the database, or in the
    spool while the database is down: then the database is reported ``degraded``); else 503."""
    checks: dict[str, DependencyCheck] = {}
    if holder is None:
        checks["model"] = DependencyCheck(status="unavailable", detail="no model loaded")
    else:
        checks["model"] = DependencyCheck(status="ok", detail=holder.predictor.version)
    try:
        if not store.schema_ready:
            raise DatabaseNotMigratedError
        await run_in_threadpool(store.database.ping)
        checks["database"] = DependencyCheck(
            status="ok", detail=store.database.url.get_backend_name()
        )
    except (SQLAlchemyError, DatabaseNotMigratedError) as exc:
        checks["database"] = DependencyCheck(
            status="degraded", detail=f"unreachable ({exc.__class__.__name__}); writes are spooled"
        )
    spool_ok = store.spool.writable
    checks["spool"] = DependencyCheck(
        status="ok" if spool_ok else "unavailable", detail=str(store.spool.directory)
    )
    can_store = checks["database"].status == "ok" or spool_ok
    ready = checks["model"].status == "ok" and can_store
    if not ready:
        status = "unavailable"
    elif checks["database"].status != "ok" or store.spool.depth:
        status = "degraded"
    else:
        status = "ok"
    body = Readiness(status=status, checks=checks, spool_depth=store.spool.depth)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
def metrics(metrics: MetricsDep, store: StoreDep) -> Response:
    """Prometheus text format (aggregated over all workers when several run)."""
    metrics.spool_depth.set(store.spool.depth)
    return Response(metrics.render(), media_type=CONTENT_TYPE)
