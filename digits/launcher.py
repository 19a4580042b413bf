"""`digits up`: run the API and the UI side by side, with the trainer (retraining jobs) where
torch is installed; stop them all on Ctrl-C.

Each child runs in its own session (process group), so a terminal's Ctrl-C reaches only this
launcher, which then stops the UI before the API and waits for both: nothing is left behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from digits.api.ports import PortTakenError, ensure_port_free
from digits.config import get_settings

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 180.0  # the first start imports Streamlit on a busy 2-core machine
STOP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.5


class LaunchError(RuntimeError):
    """A child could not be started or did not become healthy."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    health_url: str | None  # None: healthy while it runs (the trainer serves no HTTP)

    def alive(self) -> bool:
        return self.process.poll() is None


class _Stop(Exception):
    """Raised from the SIGTERM handler so a `kill` stops the app like Ctrl-C does."""


def _digits_command() -> str:
    # The console script installed beside this interpreter, so the children run the same code.
    beside = Path(sys.executable).with_name("digits")
    if beside.exists():
        return str(beside)
    found = shutil.which("digits")
    if found is None:
        raise LaunchError("the `digits` command is not installed (pip install -e .)")
    return found


def _ensure_port_free(host: str, port: int, what: str) -> None:
    try:
        ensure_port_free(host, port, what)
    except PortTakenError as exc:
        raise LaunchError(str(exc)) from exc


def _die_with_parent() -> None:
    # Linux: if the launcher is killed outright (SIGKILL), the kernel sends the child SIGTERM.
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spawn(name: str, args: list[str], env: dict[str, str], health_url: str | None) -> Child:
    process = subprocess.Popen(args, env=env, start_new_session=True, preexec_fn=_die_with_parent)
    log.info("started %s (pid %d): %s", name, process.pid, " ".join(args))
    return Child(name=name, process=process, health_url=health_url)


def _how_it_ended(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def _answers_ok(url: str) -> bool:
    # urllib rather than httpx: no proxy from the environment, and no log line per poll.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _wait_healthy(children: list[Child], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(children)
    while pending:
        for child in list(pending):
            if not child.alive():
                raise LaunchError(
                    f"the {child.name} {_how_it_ended(child.process.returncode)} "
                    "while starting (its output is above)"
                )
            if child.health_url is None or _answers_ok(child.health_url):
                pending.remove(child)
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(child.name for child in pending)
            raise LaunchError(f"not healthy after {timeout_s:.0f} s: {names}")
        time.sleep(POLL_INTERVAL_S)


def _stop(child: Child) -> None:
    if not child.alive():
        return
    # The whole group: uvicorn workers and Streamlit's own children go with their parent.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signal.SIGTERM)
    try:
        child.process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0f s; killing it", child.name, STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()
    # Anything a child left in its group (a worker that ignored SIGTERM) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signal.SIGKILL)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM stops the app as Ctrl-C does. Ctrl-C (SIGINT) works even where it was inherited
    as ignored, as a shell starts background jobs: `kill -INT` would otherwise do nothing."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous_term = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def up(
    *,
    host: str | None = None,
    port: int | None = None,
    ui_port: int | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the API, the UI and, where torch is installed, the trainer until Ctrl-C (or
    SIGTERM); returns the process exit code."""
    settings = get_settings()
    out = out or sys.stdout
    err = err or sys.stderr
    host = host or settings.host
    port = port or settings.port
    ui_port = ui_port or settings.ui_port
    api_url = f"http://{host}:{port}"
    ui_url = f"http://{host}:{ui_port}"

    env = dict(os.environ)
    env.update(
        DIGITS_HOST=host,
        DIGITS_PORT=str(port),
        DIGITS_UI_PORT=str(ui_port),
        DIGITS_API_URL=api_url,
        DIGITS_DATA_DIR=str(settings.data_dir.resolve()),
        # Streamlit: no e-mail prompt, no usage statistics, and only the address asked for.
        STREAMLIT_SERVER_HEADLESS="true",
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
        STREAMLIT_SERVER_ADDRESS=host,
    )
    # A person reads this terminal: plain log lines unless JSON was asked for explicitly.
    env.setdefault("DIGITS_LOG_JSON", "false")
    children: list[Child] = []
    with _stop_signals():
        try:
            _ensure_port_free(host, port, "API")
            _ensure_port_free(host, ui_port, "UI")
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            digits = _digits_command()
            children.append(
                _spawn(
                    "API",
                    [digits, "serve", "--host", host, "--port", str(port)],
                    env,
                    f"{api_url}/readyz",
                )
            )
            children.append(
                _spawn(
                    "UI",
                    [digits, "ui", "--host", host, "--port", str(ui_port)],
                    env,
                    f"{ui_url}/_stcore/health",
                )
            )
            # Without torch (serving only) nothing here retrains: jobs wait for a trainer
            # started elsewhere.
            trains = importlib.util.find_spec("torch") is not None
            if trains:
                children.append(_spawn("trainer", [digits, "trainer"], env, None))
            _wait_healthy(children, STARTUP_TIMEOUT_S)
            out.write(
                f"\nDigits is running:\n  app  {ui_url}\n  API  {api_url}/docs\n"
                + ("  trainer  runs retraining jobs\n" if trains else "")
                + "Press Ctrl-C to stop.\n"
            )
            out.flush()
            while all(child.alive() for child in children):
                time.sleep(POLL_INTERVAL_S)
            dead = next(child for child in children if not child.alive())
            err.write(f"digits up: the {dead.name} {_how_it_ended(dead.process.returncode)}\n")
            return 1
        except (KeyboardInterrupt, _Stop):
            out.write("\nStopping...\n")
            out.flush()
            return 0
        except LaunchError as exc:
            err.write(f"digits up: {exc}\n")
            return 1
        finally:
            # A second Ctrl-C must not cut the shutdown short and leave a child behind.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                for child in reversed(children):
                    _stop(child)
            finally:
                signal.signal(signal.SIGINT, previous)
