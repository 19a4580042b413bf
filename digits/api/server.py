"""``digits serve``: migrate the database to head, then run gunicorn with N uvicorn workers."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, ClassVar

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from digits.api.connections import KEEPALIVE_S, MAX_CONNECTIONS, HeadDeadlineProtocol
from digits.api.ports import ensure_port_free
from digits.api.supervisor import SUPERVISOR_ENV
from digits.config import get_settings
from digits.logs import configure_logging

logger = logging.getLogger(__name__)

WORKER_HEALTHCHECK_S = 60
GRACEFUL_SHUTDOWN_S = 10


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
    from digits.db.wait import wait_for_database

    host = host or settings.host
    port = port or settings.port
    workers = max(1, workers or settings.workers)
    # gunicorn's workers would otherwise retry the bind, exit and be restarted, over and over.
    ensure_port_free(host, port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Each worker's lifespan migrates (digits.api.app); the migration is serialised by a lock,
    # so the first worker applies it and the others find nothing to do.
    wait_for_database(settings.resolved_database_url, timeout_s=settings.db_wait_s)
    _prepare_multiprocess_metrics(workers)
    os.environ[SUPERVISOR_ENV] = str(os.getpid())  # inherited by the workers
    logger.info("serving", extra={"host": host, "port": port, "workers": workers})
    _Gunicorn(
        bind=f"{host}:{port}",
        workers=workers,
        worker_class="digits.api.server.Worker",
        logger_class="digits.api.server.GunicornLogs",
        # Each worker listens on a socket of its own (SO_REUSEPORT), so the kernel spreads new
        # connections over the workers. On one shared socket, whichever worker wakes first takes
        # every connection of a burst, and keep-alive clients then load one core of several.
        reuse_port=True,
        # The supervisor restarts a worker that stays silent this long. A worker's start-up
        # (imports, the model) can take longer than gunicorn's default on a busy small machine,
        # and a killed worker restarts just as slowly: a restart loop.
        timeout=WORKER_HEALTHCHECK_S,
        graceful_timeout=GRACEFUL_SHUTDOWN_S,
        keepalive=KEEPALIVE_S,
        control_socket_disable=True,  # gunicorn's runtime control interface: not used here
    ).run()


class Worker(UvicornWorker):
    """uvicorn in a gunicorn worker, configured as `digits serve` wants it."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "access_log": False,  # digits.access writes the access line, with the request id
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "http": HeadDeadlineProtocol,  # idle and slowly-sent requests are closed
        "limit_concurrency": MAX_CONNECTIONS,
    }


class GunicornLogs(glogging.Logger):
    """gunicorn's own lines go through the root logger, so they are JSON like every other."""

    def setup(self, cfg: Any) -> None:
        for log in (self.error_log, self.access_log):
            log.handlers = []
            log.propagate = True


class _Gunicorn(BaseApplication):
    def __init__(self, **options: Any) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from digits.api.app import create_app

        return create_app()
