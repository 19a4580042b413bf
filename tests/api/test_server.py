"""`digits serve` end to end: several workers on a fresh SQLite file, migrated first,
metrics aggregated over workers, JSON log lines that all carry a request id field."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_helpers import drawing

from digits.api.testing import free_port, taken_port
from digits.config import InsecureSettingsError, Settings

pytestmark = pytest.mark.slow


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
        deadline = time.monotonic() + 180  # two workers import torch: slow on a busy machine
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited during startup"
            assert time.monotonic() < deadline, "not ready within 180 s"
            time.sleep(0.3)
        assert (tmp_path / "data" / "digits.sqlite3").exists()  # the default database, migrated
        with httpx.Client(base_url=base, timeout=10) as client:
            # Both workers check tokens with the one key they share (data_dir/secret_key).
            session = client.post("/api/sessions").json()
            client.headers["X-Session-Token"] = session["session_token"]
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
    served = [r for r in records if r.get("path") == "/api/predictions" and r.get("status") == 201]
    assert served and all(r["request_id"] == "bench-req-1" for r in served)


def test_production_refuses_default_secrets() -> None:
    strong = {"admin_token": "a" * 32, "secret_key": "k" * 32}
    good = {"env": "production", **strong, "database_url": "postgresql://u:Xy9-long@db/x"}
    Settings(**good)
    refused = [
        {"env": "production"},
        {**good, "admin_token": "changeme"},
        {**good, "admin_token": "1234"},
        {**good, "admin_token": "x" * 31},
        {**good, "secret_key": None},
        {**good, "secret_key": "short"},
        {**good, "database_url": "postgresql://u:postgres@db/x"},
        {**good, "database_url": "postgresql://u@db/x"},  # no password at all
        {**good, "database_url": "postgresql://u:@db/x"},
        {**good, "database_url": "postgresql://u:Xy9-long@db/x", "database_password": "password"},
        {**good, "database_url": "sqlite:///x.db"},
    ]
    for settings in refused:
        with pytest.raises(InsecureSettingsError):
            Settings(**settings)


def _serve(port: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`digits serve` on ``port``, expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "digits.cli", "serve", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "database", [None, "sqlite:///var/digits.sqlite3"], ids=["default-sqlite", "sqlite-url"]
)
def test_production_refuses_to_start_on_sqlite(tmp_path: Path, database: str | None) -> None:
    """Every other production setting is sound, so SQLite alone is what `digits serve` refuses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    env |= {
        "DIGITS_ENV": "production",
        "DIGITS_ADMIN_TOKEN": "a-long-random-token",
        "DIGITS_DATA_DIR": str(tmp_path / "data"),
    }
    if database is not None:
        env["DIGITS_DATABASE_URL"] = database
    # A taken port: were the check gone, serve would stop there (with another message), not run.
    with taken_port() as port:
        result = _serve(port, env)
    assert result.returncode != 0
    assert "DIGITS_DATABASE_URL must name a server database" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before creating or migrating anything


def test_serve_refuses_a_taken_port_with_a_clear_message(tmp_path: Path) -> None:
    """The workers bind with SO_REUSEPORT; without the check, each would fail to bind and be
    restarted by the supervisor, forever."""
    with taken_port() as port:
        env = {**os.environ, "DIGITS_DATA_DIR": str(tmp_path / "data")}
        result = _serve(port, env)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 for the API is taken" in result.stderr
