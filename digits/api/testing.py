"""`digits serve` as a child process, for tests and benchmarks (never used by the app)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# The `digits` command of the environment this runs in (.venv/bin/digits).
DIGITS = Path(sys.executable).with_name("digits")
# Settings that describe the machine, not the run: passed through to the servers started here.
KEEP = {"DIGITS_MODEL_PATH", "DIGITS_MNIST_DIR"}
READY_TIMEOUT_S = 180


def child_environ(**settings: str) -> dict[str, str]:
    """The environment for a `digits` child: this one without its DIGITS_* settings (except
    those in KEEP), plus ``settings``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_") or k in KEEP}
    environ.update(settings)
    return environ


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port that something listens on while the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_process(
    database_url: str,
    data_dir: Path,
    *,
    workers: int,
    log_path: Path,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`digits serve --workers N` on a free loopback port, in a session of its own (so a test
    can signal the whole process group) -> (base URL, process) once /readyz answers 200.
    Its output goes to ``log_path``; it is stopped (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    environ = child_environ(
        DIGITS_ENV="test",
        DIGITS_DATABASE_URL=database_url,
        DIGITS_DATA_DIR=str(data_dir),
        DIGITS_RATE_LIMIT="0",  # load and fault runs write faster than one visitor may
    )
    environ.update(env or {})
    argv = [str(DIGITS), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--workers", str(workers)],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, log_path)
        yield base, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=base, timeout=5.0, trust_env=False) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError("the API exited:\n" + log_path.read_text()[-4000:])
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the API was not ready within {READY_TIMEOUT_S} s:\n"
                    + log_path.read_text()[-4000:]
                )
            time.sleep(0.5)
