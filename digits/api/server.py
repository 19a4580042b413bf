"""``digits serve``: migrate the database to head, then run uvicorn with N workers.

With several workers, ``digits serve`` supervises them itself rather than through uvicorn's
``--workers``: there, every worker watches the shared listening socket from its event loop, and
the first to wake accepts every pending connection. Clients that connect together (a connection
pool, a benchmark) can then all land on one worker, and keep-alive keeps them there while the
other cores idle. Here each worker accepts on a thread blocked in ``accept()``: the kernel hands
each new connection to one blocked caller, the one that has waited longest, so connections
alternate between the workers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import threading
import time
from types import FrameType

import uvicorn

from digits.config import get_settings
from digits.logs import configure_logging

logger = logging.getLogger(__name__)


def _prepare_multiprocess_metrics(workers: int) -> None:
    """Several workers share Prometheus samples through files (see digits.api.metrics)."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    path = get_settings().data_dir.resolve() / "prometheus"
    shutil.rmtree(path, ignore_errors=True)  # samples of a previous run would be summed in
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


ACCEPT_PAUSE_S = 0.001  # caps a worker at 1,000 new connections/s, far above what it serves
CRASH_LOOP_S = 10.0  # a worker that dies this soon after starting is not restarted: all stop


class _Server(uvicorn.Server):
    """uvicorn's server, with the garbage collector told what lives as long as the process."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # Torch, the model and the app are a million objects that live as long as the process.
        # A full collection walks all of them (170 ms, measured) and stalls every request of
        # this worker meanwhile; frozen, they are left out of every collection.
        gc.collect()
        gc.freeze()


class _Worker(_Server):
    """One worker process: uvicorn's server, fed by an accepting thread (see the docstring)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app's lifespan; no listener of uvicorn's own
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        for sock in sockets or []:
            threading.Thread(
                target=self._accept_forever, args=(sock, loop), name="digits-accept", daemon=True
            ).start()

    def _accept_forever(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(True)
        while not self.should_exit:
            try:
                connection, _ = sock.accept()
            except OSError as exc:  # out of file descriptors, say: back off, keep serving
                logger.warning("accept failed: %s", exc)
                time.sleep(0.1)
                continue
            connection.setblocking(False)
            try:
                asyncio.run_coroutine_threadsafe(self._connect(connection), loop)
            except RuntimeError:  # the event loop is closed: this worker is gone
                connection.close()
                return
            # Step back before the next accept(): a burst of connections that arrived together
            # would otherwise all be taken here while the other workers' threads, woken for
            # them, are still being scheduled.
            time.sleep(ACCEPT_PAUSE_S)

    async def _connect(self, connection: socket.socket) -> None:
        config = self.config

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        await asyncio.get_running_loop().connect_accepted_socket(protocol, connection)


def _run_worker(config: uvicorn.Config, sock: socket.socket, supervisor: int) -> None:
    config.configure_logging()  # a spawned process starts bare (uvicorn's workers do the same)
    server = _Worker(config)

    def stop_when_orphaned() -> None:
        while os.getppid() == supervisor:
            time.sleep(1)
        server.should_exit = True  # the supervisor was killed: do not serve on without it

    threading.Thread(target=stop_when_orphaned, name="digits-orphan", daemon=True).start()
    server.run(sockets=[sock])


class _Supervisor:
    """Starts the workers, restarts one that dies, stops them all on SIGINT or SIGTERM."""

    def __init__(self, config: uvicorn.Config, workers: int) -> None:
        self.config = config
        self.workers = workers
        self.stopping = threading.Event()
        self.context = multiprocessing.get_context("spawn")

    def _start(self, sock: socket.socket) -> tuple[multiprocessing.process.BaseProcess, float]:
        process = self.context.Process(target=_run_worker, args=(self.config, sock, os.getpid()))
        process.start()
        return process, time.monotonic()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()

    def run(self) -> int:
        sock = self.config.bind_socket()
        sock.listen(self.config.backlog)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)
        running = [self._start(sock) for _ in range(self.workers)]
        status = 0
        while not self.stopping.is_set():
            multiprocessing.connection.wait([p.sentinel for p, _ in running], timeout=0.5)
            for index, (process, started) in enumerate(running):
                if process.is_alive() or self.stopping.is_set():
                    continue
                if time.monotonic() - started < CRASH_LOOP_S:
                    logger.error("a worker exited during startup; stopping")
                    self.stopping.set()
                    status = 1
                    break
                logger.warning("worker %s exited (%s); restarting", process.pid, process.exitcode)
                running[index] = self._start(sock)
        for process, _ in running:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown
        deadline = time.monotonic() + (self.config.timeout_graceful_shutdown or 10) + 5
        for process, _ in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        sock.close()
        return status


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Blocks until stopped. Arguments left out come from the settings (DIGITS_HOST/PORT/WORKERS)."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    from digits.db.migrate import upgrade_head  # after logging: alembic logs as it imports

    host = host or settings.host
    port = port or settings.port
    workers = max(1, workers or settings.workers)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Once here, before any worker starts; each worker's lifespan repeats it (a no-op then),
    # which keeps replicas safe: the migration itself is serialised by a lock.
    upgrade_head(settings.resolved_database_url)
    _prepare_multiprocess_metrics(workers)
    logger.info("serving", extra={"host": host, "port": port, "workers": workers})
    config = uvicorn.Config(
        "digits.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    if workers == 1:
        server = _Server(config)
        server.run()
        if not server.started:
            raise SystemExit(1)  # the lifespan failed; it logged why
        return
    if _Supervisor(config, workers).run():
        raise SystemExit(1)
