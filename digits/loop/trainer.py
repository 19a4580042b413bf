"""`digits trainer`: the service that retrains. It gives every registered model its ONNX graph
(`digits models export-onnx`) at start, then runs the retraining jobs the API queues, one at a
time across every host (the lease in digits.loop.jobs), reporting progress in the database.
It needs torch (`pip install 'digits[train]'`); the API never trains."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from digits.config import Settings
from digits.loop import jobs
from digits.loop.cli import export_onnx
from digits.loop.registry import Registry
from digits.loop.report import summary_line
from digits.loop.retrain import Options, retrain

log = logging.getLogger(__name__)

POLL_S = 5.0
PROGRESS_EVERY_S = 2.0  # at most one progress write per this many seconds


def _reporter(registry: Registry, job_id: uuid.UUID, holder: str) -> Callable[[float], None]:
    last = [0.0]

    def report(progress: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            jobs.report_progress(registry.database, job_id, holder, progress)

    return report


def run_job(settings: Settings, registry: Registry, job_id: uuid.UUID, holder: str) -> bool:
    """One claimed job to its end; whether it succeeded."""
    try:
        report = retrain(
            settings,
            Options(mnist_dir=settings.mnist_dir),
            progress=_reporter(registry, job_id, holder),
        )
    except Exception as exc:  # the job records why; the trainer goes on with the next
        log.exception("retraining job %s failed", job_id)
        jobs.finish(registry.database, job_id, holder, error=f"{type(exc).__name__}: {exc}")
        return False
    jobs.finish(registry.database, job_id, holder, report=summary_line(report))
    log.info("retraining job %s: %s", job_id, report["decision"])
    return True


def serve_jobs(settings: Settings, *, once: bool = False, poll_s: float = POLL_S) -> int:
    """Blocks, taking jobs as they come; with ``once``, runs what is queued now and returns."""
    registry = Registry.from_settings(settings)
    registry.ensure()
    exported = export_onnx(registry, [])
    log.info("trainer ready; ONNX graphs exported for %d earlier models", len(exported))
    holder = f"trainer-{uuid.uuid4().hex[:12]}"
    while True:
        job_id = jobs.claim(registry.database, holder)
        if job_id is not None:
            run_job(settings, registry, job_id, holder)
        elif once:
            return 0
        else:
            time.sleep(poll_s)
