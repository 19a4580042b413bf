"""``digits serve``: migrate the database to head, then run uvicorn with N worker processes."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal

import uvicorn

from digits.config import get_settings
from digits.logs import configure_logging

logger = logging.getLogger(__name__)

WORKER_HEALTHCHECK_S = 60
SUPERVISOR_ENV = "DIGITS_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def die_with_supervisor() -> None:
    """In a worker of `digits serve --workers N`: end when the supervisor does, even when it was
    killed outright (SIGKILL, the OOM killer). uvicorn's workers would otherwise keep serving
    as orphans that nothing stops. Linux only; elsewhere a no-op."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is None or os.getpid() == int(supervisor):
        return
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("could not tie this worker to its supervisor's lifetime")
        return
    if os.getppid() != int(supervisor):  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _prepare_multiprocess_metrics(workers: int) -> None:
    """Several workers share Prometheus samples through files (see digits.api.metrics)."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    path = get_settings().data_dir.resolve() / "prometheus"
    shutil.rmtree(path, ignore_errors=True)  # samples of a previous run would be summed in
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Blocks until stopped. Arguments left out come from the settings (DIGITS_HOST/PORT/WORKERS)."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    from digits.db.migrate import upgrade_head  # after logging: alembic logs as it imports
    from digits.db.wait import wait_for_database

    host = host or settings.host
    port = port or settings.port
    workers = max(1, workers or settings.workers)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Once here, before any worker starts; each worker's lifespan repeats it (a no-op then),
    # which keeps replicas safe: the migration itself is serialised by a lock.
    wait_for_database(settings.resolved_database_url, timeout_s=settings.db_wait_s)
    upgrade_head(settings.resolved_database_url)
    _prepare_multiprocess_metrics(workers)
    if workers > 1:
        os.environ[SUPERVISOR_ENV] = str(os.getpid())  # inherited by the workers
    logger.info("serving", extra={"host": host, "port": port, "workers": workers})
    uvicorn.run(
        "digits.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
        # uvicorn's supervisor kills a worker that misses a health ping. A worker's start-up
        # (torch, the model, the ONNX export) can hold it for longer than the default 5 s on
        # a busy small machine, and a killed worker restarts just as slowly: a restart loop.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )
