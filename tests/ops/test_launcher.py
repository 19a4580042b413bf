"""`digits up` as a user runs it: both servers answer, Ctrl-C stops everything it started."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ops_support import require

from digits.api.testing import DIGITS, child_environ, free_port, taken_port

MARKER = "DIGITS_OPS_TEST_MARKER"


def processes_with_marker(value: str) -> list[int]:
    """Pids whose environment carries our marker: the launcher and everything it spawned."""
    needle = f"{MARKER}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def launcher_env(tmp_path: Path, api_port: int, ui_port: int, marker: str) -> dict[str, str]:
    return child_environ(
        DIGITS_DATA_DIR=str(tmp_path / "data"),
        DIGITS_HOST="127.0.0.1",
        DIGITS_PORT=str(api_port),
        DIGITS_UI_PORT=str(ui_port),
        DIGITS_LOG_JSON="false",
        **{MARKER: marker},
    )


def drain(stream: object, lines: queue.Queue[str]) -> None:
    # Keeps the pipe empty so the children never block on a full stdout.
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        lines.put(line)


@pytest.fixture
def installed() -> Path:
    require(DIGITS.exists(), "the project is not installed in .venv")
    require(Path("/proc/self/environ").exists(), "needs /proc to find child processes")
    return DIGITS


@dataclass
class Running:
    process: subprocess.Popen[str]
    api_port: int
    ui_port: int
    marker: str
    lines: queue.Queue[str]
    output: list[str]

    def children(self) -> list[int]:
        return [pid for pid in processes_with_marker(self.marker) if pid != self.process.pid]

    def collect(self) -> str:
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)


@pytest.fixture
def running_up(installed: Path, tmp_path: Path) -> Iterator[Running]:
    """`digits up` on free ports, once it has printed its URL; afterwards, nothing it started
    may be left running, however the test ended."""
    api_port, ui_port = free_port(), free_port()
    marker = uuid.uuid4().hex
    # Started with SIGINT ignored, as a shell starts a background job (`digits up &`): Ctrl-C,
    # or `kill -INT`, must still stop it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = subprocess.Popen(
            [str(installed), "up"],
            env=launcher_env(tmp_path, api_port, ui_port, marker),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=drain, args=(process.stdout, lines), daemon=True).start()
    running = Running(process, api_port, ui_port, marker, lines, [])
    try:
        deadline = time.monotonic() + 240
        while "Digits is running" not in "".join(running.output):
            assert process.poll() is None, "digits up exited:\n" + running.collect()
            assert time.monotonic() < deadline, "no URL in 240 s:\n" + running.collect()
            with contextlib.suppress(queue.Empty):
                running.output.append(lines.get(timeout=1))
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        deadline = time.monotonic() + 10
        while processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftovers = processes_with_marker(marker)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert leftovers == [], "processes left behind:\n" + running.collect()
    for port in (api_port, ui_port):
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


@pytest.mark.slow
def test_up_serves_api_and_ui_and_sigint_stops_both(running_up: Running, tmp_path: Path) -> None:
    assert f"http://127.0.0.1:{running_up.ui_port}" in "".join(running_up.output)
    with httpx.Client(timeout=10, trust_env=False) as client:
        assert client.get(f"http://127.0.0.1:{running_up.api_port}/healthz").status_code == 200
        page = client.get(f"http://127.0.0.1:{running_up.ui_port}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
    assert (tmp_path / "data" / "digits.sqlite3").exists(), "default database not migrated"
    assert len(running_up.children()) >= 2, "expected the API and the UI as children"
    # torch is installed here, so the trainer runs beside them.
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in running_up.children()]
    assert any(b"\0trainer" in command for command in commands)

    running_up.process.send_signal(signal.SIGINT)
    assert running_up.process.wait(timeout=60) == 0


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_up_stops_the_ui_and_fails_when_the_api_dies(running_up: Running) -> None:
    # The API's supervisor: the launcher's own child (its workers, forked, share its command line).
    (api,) = [
        pid
        for pid in running_up.children()
        if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        and _parent(pid) == running_up.process.pid
    ]
    os.kill(api, signal.SIGKILL)
    assert running_up.process.wait(timeout=60) == 1
    time.sleep(0.5)  # the reader thread catches up with the last lines
    assert "digits up: the API was killed by SIGKILL" in running_up.collect()


def test_up_refuses_a_taken_port_with_a_clear_message(installed: Path, tmp_path: Path) -> None:
    with taken_port() as port:
        result = subprocess.run(
            [str(installed), "up"],
            env=launcher_env(tmp_path, port, free_port(), uuid.uuid4().hex),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 for the API is taken" in result.stderr
