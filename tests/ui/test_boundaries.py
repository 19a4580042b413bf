"""The UI is a thin client: it never loads torch, SQLAlchemy or the API package."""

from __future__ import annotations

import json
import subprocess
import sys

from digits.ui import launch

FORBIDDEN = ("torch", "sqlalchemy", "alembic", "digits.api", "digits.db", "digits.predict")


def test_ui_modules_do_not_import_the_model_the_database_or_the_api() -> None:
    # A fresh interpreter: this test process may have loaded torch for other tests.
    # Every module under digits/ui, found on disk, so a new page is checked too.
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import digits.ui\n"
        "names = [m.name for m in pkgutil.walk_packages(digits.ui.__path__, 'digits.ui.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(json.dumps({'names': names, 'loaded': sorted(sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"digits.ui.app", "digits.ui.client", "digits.ui.views.draw"} <= set(report["names"])
    loaded = report["loaded"]
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN)]
    assert offenders == []
    assert "streamlit" in loaded  # the check ran on the real UI imports


def test_launch_command_runs_this_apps_script_on_the_port() -> None:
    cmd = launch.command(8765)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4].endswith("digits/ui/app.py")
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"  # not every interface
    assert launch.command(8765, "0.0.0.0")[cmd.index("--server.address") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
