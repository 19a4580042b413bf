"""`digits serve` end to end: several uvicorn workers on a fresh SQLite file, migrated first,
metrics aggregated over workers, JSON log lines that all carry a request id field."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_helpers import drawing

from digits.api.server import CRASH_LOOP_S
from digits.api.testing import free_port
from digits.config import InsecureSettingsError, Settings

pytestmark = pytest.mark.slow


def _workers(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    # multiprocessing's resource tracker is a child too
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _spread_over_workers(supervisor: int, port: int, *, rounds: int) -> None:
    """Four clients connecting at once land on both workers, ``rounds`` times in a row, once
    both workers are up (/readyz answers as soon as the first one is)."""
    spread, deadline = 0, time.monotonic() + 60
    while spread < rounds:
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for connection in connections:
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        held = _connections_by_worker(supervisor, port)
        for connection in connections:
            connection.close()
        assert len(held) == 2 and sum(held) == 4, held
        if min(held) == 0:  # a worker may still be starting; never once both are up
            assert spread == 0 and time.monotonic() < deadline, held
            time.sleep(0.5)
            continue
        spread += 1


def _connections_by_worker(supervisor: int, port: int) -> list[int]:
    """How many established connections to ``port`` each worker process holds."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            established.add(fields[9])  # the socket's inode
    held = []
    for child in _workers(supervisor):
        inodes = set()
        for fd in Path(f"/proc/{child}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
        held.append(len(inodes & established))
    return held


def test_serve_with_two_workers(tmp_path: Path, checkpoint_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DIGITS_DATA_DIR": str(tmp_path / "data"),
        "DIGITS_MODEL_PATH": str(checkpoint_path),
        "DIGITS_DATABASE_URL": "",
    }
    env.pop("DIGITS_DATABASE_URL")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp_path / "server.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "digits.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited during startup"
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.3)
        assert (tmp_path / "data" / "digits.sqlite3").exists()  # the default database, migrated
        # Clients that connect at the same moment are spread over the workers (each accepts on
        # a thread blocked in accept(), which the kernel serves in turn).
        _spread_over_workers(process.pid, port, rounds=3)
        started = time.monotonic()

        with httpx.Client(base_url=base, timeout=10) as client:
            ids = []
            for _ in range(12):
                response = client.post(
                    "/api/predictions",
                    files={"image": ("d.png", drawing(), "image/png")},
                    headers={"X-Request-ID": "bench-req-1"},
                )
                assert response.status_code == 201
                ids.append(response.json()["id"])
            assert client.get("/api/predictions").json()["total"] == 12
            # Whichever worker answers /metrics reports all workers' predictions.
            for _ in range(4):
                text = client.get("/metrics", headers={"Connection": "close"}).text
                counted = sum(
                    float(v)
                    for v in re.findall(r"^digits_predictions_total\{[^}]*\} (\S+)$", text, re.M)
                )
                assert counted == 12
                assert "digits_spool_depth" in text
        # A worker that dies after its startup is replaced, and the new one takes its share.
        time.sleep(max(0.0, CRASH_LOOP_S - (time.monotonic() - started)))
        killed = _workers(process.pid)[0]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while killed in _workers(process.pid) or len(_workers(process.pid)) < 2:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        _spread_over_workers(process.pid, port, rounds=1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0
    log.seek(0)
    lines = [line for line in log.read().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all("request_id" in record for record in records)
    served = [r for r in records if r.get("logger") == "digits.access" and r.get("status") == 201]
    assert served and all(r["request_id"] == "bench-req-1" for r in served)


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(InsecureSettingsError):
        Settings(env="production")
    with pytest.raises(InsecureSettingsError):
        Settings(
            env="production", admin_token="changeme", database_url="postgresql://u:postgres@db/x"
        )
    Settings(
        env="production", admin_token="a-long-random-token", database_url="postgresql://u:Xy9@db/x"
    )
