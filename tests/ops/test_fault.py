"""Nothing lost when the database fails: stop the real PostgreSQL under a steady stream of
predictions and corrections, start it again, and check every acknowledged write in the database.

This stops the machine's only PostgreSQL, so it runs alone, after everything else
(`scripts/test.sh` runs `-m "not fault"` first, then `-m fault`), and starts it again whatever
happens. Commands to stop and start it can be replaced through DIGITS_TEST_PG_STOP and
DIGITS_TEST_PG_START (shell strings) where the server is not a local pg_ctlcluster one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from ops_support import POSTGRES_ADMIN_URL, postgres_reachable, require

from digits.api.testing import DIGITS, serve_process
from digits.synth import drawings, glyphs

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 4
WORKERS = 2  # each worker has its own spool file: the test covers more than one
HEALTHY_S, OUTAGE_S, RECOVERED_S = 4.0, 8.0, 4.0
REPLAY_DEADLINE_S = 90.0


def _cluster_version() -> str | None:
    root = Path("/etc/postgresql")
    versions = sorted((p.name for p in root.iterdir()), key=_version_key) if root.is_dir() else []
    return versions[-1] if versions else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _pg_commands() -> tuple[list[str], list[str]] | None:
    stop, start = os.environ.get("DIGITS_TEST_PG_STOP"), os.environ.get("DIGITS_TEST_PG_START")
    if stop and start:
        return ["sh", "-c", stop], ["sh", "-c", start]
    version = _cluster_version()
    if shutil.which("pg_ctlcluster") is None or version is None or os.geteuid() != 0:
        return None
    base = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    return [*base, "stop", "-m", "fast"], [*base, "start"]


def _wait_postgres(up: bool, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while postgres_reachable() != up:
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL still {'down' if up else 'up'} after {timeout_s} s")
        time.sleep(0.2)


def canvas_drawings() -> list[bytes]:
    """A few 280x280 canvas-like drawings (the project's own generator): black strokes on a
    transparent background, as the web canvas sends them."""
    look = drawings.Look(encoding="RGBA")
    return [
        drawings.to_png(drawings.draw(glyphs.glyph_strokes(d, glyphs.STYLES[d][0]), look))
        for d in (1, 7, 4)
    ]


@dataclass
class Ledger:
    """What the API acknowledged, and everything else it answered."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    predictions: list[str] = field(default_factory=list)  # ids from 2xx POSTs
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> digit, version
    labels: dict[str, int] = field(default_factory=dict)  # id -> last acknowledged label
    failures: list[str] = field(default_factory=list)
    posts: int = 0
    patches: int = 0


def _client_loop(base: str, stop: threading.Event, ledger: Ledger, seed: int) -> None:
    images = canvas_drawings()
    n = seed
    with httpx.Client(base_url=base, timeout=15.0, trust_env=False) as client:
        while not stop.is_set():
            n += 1
            try:
                answer = client.post(
                    "/api/predictions",
                    files={"image": ("drawing.png", images[n % len(images)], "image/png")},
                    data={"source": "canvas"},
                )
            except httpx.HTTPError as exc:
                with ledger.lock:
                    ledger.posts += 1
                    ledger.failures.append(f"POST: {exc!r}")
                continue
            with ledger.lock:
                ledger.posts += 1
                if answer.status_code // 100 != 2:
                    ledger.failures.append(f"POST {answer.status_code}: {answer.text[:200]}")
                    continue
                body = answer.json()
                prediction_id = body["id"]
                ledger.predictions.append(prediction_id)
                ledger.answers[prediction_id] = (body["digit"], body["model_version"])
            # A third stay unlabelled, a third are labelled once, a third labelled then changed.
            labels = [[], [n % 10], [n % 10, (n + 3) % 10]][n % 3]
            for label in labels:
                try:
                    patched = client.patch(
                        f"/api/predictions/{prediction_id}",
                        json={"true_label": label},
                        headers={"X-Session-Token": body["session_token"]},
                    )
                except httpx.HTTPError as exc:
                    with ledger.lock:
                        ledger.patches += 1
                        ledger.failures.append(f"PATCH: {exc!r}")
                    break
                with ledger.lock:
                    ledger.patches += 1
                    if patched.status_code // 100 == 2:
                        ledger.labels[prediction_id] = label
                    else:
                        ledger.failures.append(f"PATCH {patched.status_code}: {patched.text[:200]}")
            time.sleep(0.02)


def _spool_depth(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("digits_spool_depth")
    )


def _ensure_started(start_pg: list[str]) -> None:
    if not postgres_reachable():
        subprocess.run(start_pg, check=False, capture_output=True, timeout=60)
        _wait_postgres(up=True)


@pytest.fixture
def pg_control() -> Iterator[tuple[list[str], list[str]]]:
    require(postgres_reachable(), "PostgreSQL is not reachable at 127.0.0.1:5432")
    commands = _pg_commands()
    require(commands is not None, "cannot stop and start PostgreSQL here (pg_ctlcluster as root)")
    assert commands is not None
    try:
        yield commands
    finally:
        _ensure_started(commands[1])


@pytest.fixture
def fault_database(pg_control: tuple[list[str], list[str]]) -> Iterator[str]:
    import psycopg

    name = f"digits_fault_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    admin = httpx.URL(POSTGRES_ADMIN_URL)
    try:
        yield str(admin.copy_with(path=f"/{name}"))
    finally:
        _ensure_started(pg_control[1])
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def api_server(
    database_url: str, tmp_path: Path, *, workers: int, name: str = "server"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`digits serve` on a free port with its spool in tmp_path/spool; stopped on exit."""
    require(DIGITS.exists(), "the project is not installed in .venv")
    with serve_process(
        database_url,
        tmp_path / "data",
        workers=workers,
        log_path=tmp_path / f"{name}.log",
        env={"DIGITS_SPOOL_DIR": str(tmp_path / "spool")},
    ) as running:
        yield running


@pytest.fixture
def server(fault_database: str, tmp_path: Path) -> Iterator[str]:
    with api_server(fault_database, tmp_path, workers=WORKERS) as (base, _):
        yield base


def _wait_replayed(base: str, spool_dir: Path) -> None:
    """Until the servers report nothing pending and no spool file holds an entry (files left
    by a stopped process count until a live one has adopted and replayed them)."""
    deadline = time.monotonic() + REPLAY_DEADLINE_S
    with httpx.Client(base_url=base, timeout=10.0, trust_env=False) as probe:
        while _spool_depth(probe) > 0 or any(
            path.stat().st_size > 0 for path in spool_dir.glob("*.jsonl")
        ):
            assert time.monotonic() < deadline, "the spool was not replayed in time"
            time.sleep(0.5)


def _assert_database_matches(database_url: str, ledger: Ledger) -> None:
    """Every acknowledged prediction has exactly its row, every acknowledged label is there."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, true_label, digit, model_version, input_png IS NOT NULL"
            " FROM predictions"
        ).fetchall()
    stored = {row[0]: row[1] for row in rows}

    acknowledged = set(ledger.predictions)
    assert len(acknowledged) == len(ledger.predictions), "the API gave one id twice"
    assert len(rows) == len(stored), "duplicate rows"
    missing = acknowledged - stored.keys()
    assert not missing, f"{len(missing)} acknowledged predictions have no row"
    assert stored.keys() == acknowledged, "rows that no 2xx answer acknowledged"
    # Replayed rows are whole: the answer the client got, and the model input kept.
    garbled = [r[0] for r in rows if (r[2], r[3]) != ledger.answers[r[0]] or not r[4]]
    assert not garbled, f"{len(garbled)} rows differ from their answers"
    wrong = {
        pid: (stored[pid], label) for pid, label in ledger.labels.items() if stored[pid] != label
    }
    assert not wrong, f"labels lost or stale (stored, acknowledged): {list(wrong.items())[:10]}"
    unlabelled = [pid for pid in acknowledged - ledger.labels.keys() if stored[pid] is not None]
    assert not unlabelled, "labels nobody sent"


def test_no_acknowledged_write_is_lost_when_postgres_stops(
    pg_control: tuple[list[str], list[str]], server: str, fault_database: str, tmp_path: Path
) -> None:
    stop_pg, start_pg = pg_control

    ledger = Ledger()
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client_loop, args=(server, stop, ledger, i * 1000), daemon=True)
        for i in range(CLIENTS)
    ]
    during_outage: dict[str, object] = {}
    try:
        for thread in clients:
            thread.start()
        time.sleep(HEALTHY_S)
        with ledger.lock:
            before_outage = len(ledger.predictions)
        subprocess.run(stop_pg, check=True, capture_output=True, timeout=60)
        _wait_postgres(up=False)
        time.sleep(OUTAGE_S / 2)
        with httpx.Client(base_url=server, timeout=10.0, trust_env=False) as probe:
            ready = probe.get("/readyz")
            during_outage.update(
                ready=ready.status_code, body=ready.text, depth=_spool_depth(probe)
            )
        time.sleep(OUTAGE_S / 2)
        with ledger.lock:
            during = len(ledger.predictions) - before_outage
        subprocess.run(start_pg, check=True, capture_output=True, timeout=60)
        _wait_postgres(up=True)
        time.sleep(RECOVERED_S)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        _ensure_started(start_pg)

    # The API kept answering while the database was gone, and said it was degraded.
    assert ledger.failures == [], ledger.failures[:20]
    assert before_outage > 10 and during > 10, (before_outage, during)
    assert during_outage["ready"] == 200, during_outage
    assert "degraded" in str(during_outage["body"]), during_outage
    assert float(during_outage["depth"]) > 0, during_outage  # type: ignore[arg-type]

    # Replay: wait until the spools are empty, then compare the database with the ledger.
    _wait_replayed(server, tmp_path / "spool")
    _assert_database_matches(fault_database, ledger)
    print(
        f"\nfault test: {len(ledger.predictions)} predictions ({during} during the outage), "
        f"{len(ledger.labels)} labelled, {ledger.posts} POSTs, {ledger.patches} PATCHes, "
        f"spool depth at mid-outage {during_outage['depth']:.0f}, all rows present"
    )


def test_a_crashed_servers_spool_is_replayed_by_the_next_one(
    pg_control: tuple[list[str], list[str]], fault_database: str, tmp_path: Path
) -> None:
    """The database and the API both go down: what the API acknowledged survives in its spool
    file, and the next server adopts and replays it."""
    stop_pg, start_pg = pg_control
    ledger = Ledger()
    try:
        with api_server(fault_database, tmp_path, workers=1, name="first") as (base, process):
            subprocess.run(stop_pg, check=True, capture_output=True, timeout=60)
            _wait_postgres(up=False)
            stop = threading.Event()
            client = threading.Thread(target=_client_loop, args=(base, stop, ledger, 0))
            client.start()
            # Enough acknowledged writes to matter, however busy the machine is.
            deadline = time.monotonic() + 30
            while len(ledger.predictions) <= 20 and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            client.join(timeout=30)
            os.killpg(process.pid, signal.SIGKILL)  # a crash: no shutdown code runs
            process.wait()
        subprocess.run(start_pg, check=True, capture_output=True, timeout=60)
        _wait_postgres(up=True)
    finally:
        _ensure_started(start_pg)

    assert ledger.failures == [], ledger.failures[:20]
    assert len(ledger.predictions) > 10
    left = [p for p in (tmp_path / "spool").glob("*.jsonl") if p.stat().st_size > 0]
    assert left, "the crashed server left no spool file"

    with api_server(fault_database, tmp_path, workers=1, name="second") as (base, _):
        _wait_replayed(base, tmp_path / "spool")
    _assert_database_matches(fault_database, ledger)
