"""Destructive operations and retraining requests, only with
``Authorization: Bearer $DIGITS_ADMIN_TOKEN``."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from digits.api.deps import AdminDep, StoreDep
from digits.db import crud
from digits.db.models import utcnow
from digits.errors import NotFoundError
from digits.loop import jobs
from digits.schemas import DeletedCount, PurgedCount, RetrainJob, RetrainJobId, RetrainJobs

router = APIRouter(tags=["admin"])
logger = logging.getLogger(__name__)
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "No bearer token"},
    403: {"description": "Wrong or disabled"},
}


@router.delete("/api/predictions", response_model=DeletedCount, responses=_AUTH)
def delete_history(_: AdminDep, store: StoreDep) -> DeletedCount:
    """Delete every stored prediction."""
    with store.database.write() as session:
        deleted = crud.delete_all(session)
    logger.warning("history deleted", extra={"deleted": deleted})
    return DeletedCount(deleted=deleted)


@router.post("/api/admin/purge-images", response_model=PurgedCount, responses=_AUTH)
def purge_images(
    _: AdminDep,
    store: StoreDep,
    older_than_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
) -> PurgedCount:
    """Drop stored drawings (all, or those older than N days); 28x28 inputs and labels stay."""
    cutoff = None if older_than_days is None else utcnow() - timedelta(days=older_than_days)
    with store.database.write() as session:
        purged = crud.purge_images(session, older_than=cutoff)
    logger.warning("stored drawings purged", extra={"purged": purged})
    return PurgedCount(purged=purged)


class RetrainJobNotFoundError(NotFoundError):
    """No retraining job has that id."""


@router.post("/api/admin/retrain", status_code=202, response_model=RetrainJobId, responses=_AUTH)
def request_retraining(_: AdminDep, store: StoreDep) -> RetrainJobId:
    """Queue a retraining for `digits trainer`; the job already waiting, if there is one."""
    with store.database.write() as session:
        job_id = jobs.enqueue(session, "admin")
    return RetrainJobId(job_id=job_id)


@router.get("/api/admin/retrain", response_model=RetrainJobs, responses=_AUTH)
def recent_retraining(
    _: AdminDep, store: StoreDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> RetrainJobs:
    """The most recent retraining jobs, newest first: what the Models page shows."""
    with store.database.read() as session:
        return RetrainJobs(
            jobs=[
                RetrainJob.model_validate(job, from_attributes=True)
                for job in jobs.latest(session, limit)
            ]
        )


@router.get(
    "/api/admin/retrain/{job_id}",
    response_model=RetrainJob,
    responses=_AUTH | {404: {"description": "No such job"}},
)
def retraining(job_id: uuid.UUID, _: AdminDep, store: StoreDep) -> RetrainJob:
    """A retraining job's state, progress (0-1) and, once done, its report."""
    with store.database.read() as session:
        job = jobs.get(session, job_id)
        if job is None:
            raise RetrainJobNotFoundError(f"no retraining job {job_id}")
        return RetrainJob.model_validate(job, from_attributes=True)
