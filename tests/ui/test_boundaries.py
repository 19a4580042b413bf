"""The UI is a thin client: it never loads torch, SQLAlchemy or the API package."""

from __future__ import annotations

import json
import subprocess
import sys

from digits.ui import launch

UI_MODULES = [
    "digits.ui",
    "digits.ui.client",
    "digits.ui.session",
    "digits.ui.present",
    "digits.ui.charts",
    "digits.ui.launch",
    "digits.ui.pages.result",
    "digits.ui.pages.draw",
    "digits.ui.pages.history",
    "digits.ui.pages.stats",
    "digits.ui.app",
]
FORBIDDEN = ("torch", "sqlalchemy", "alembic", "digits.api", "digits.db", "digits.predict")


def test_ui_modules_do_not_import_the_model_the_database_or_the_api() -> None:
    # A fresh interpreter: this test process may have loaded torch for other tests.
    code = (
        "import importlib, json, sys\n"
        f"for name in {UI_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN)]
    assert offenders == []
    assert "streamlit" in loaded  # the check ran on the real UI imports


def test_launch_command_runs_this_apps_script_on_the_port() -> None:
    cmd = launch.command(8765)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4].endswith("digits/ui/app.py")
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
