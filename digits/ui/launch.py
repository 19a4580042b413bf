"""`digits ui [--host H] [--port P]`: run the Streamlit app in this interpreter's environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


DEFAULT_HOST = "127.0.0.1"  # this machine only; a container passes --host 0.0.0.0


def command(port: int, host: str = DEFAULT_HOST) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # A blue accent (contrast 6.7:1 on white) instead of the default red, which reads as
        # an error next to the answer; no Deploy button in a served app.
        "--theme.base",
        "light",
        "--theme.primaryColor",
        "#1d4ed8",
        "--client.toolbarMode",
        "minimal",
        # Expected failures are shown by the pages as messages; an unexpected one must not
        # put a traceback in front of a user (it goes to the server's log).
        "--client.showErrorDetails",
        "type",
        # No file watcher: the installed app does not change under a running server.
        "--server.fileWatcherType",
        "none",
    ]


def run(port: int, host: str = DEFAULT_HOST) -> None:
    """Become the Streamlit server on `host`:`port`; the API address comes from DIGITS_API_URL.

    The process is replaced rather than given a child, so a supervisor's SIGTERM or Ctrl-C
    reaches Streamlit itself and no orphan server is left holding the port.
    """
    cmd = command(port, host)
    os.execv(cmd[0], cmd)
