"""Serving never imports torch: a real `digits serve` worker answering predictions from the
registry, `digits predict`, and the UI's modules, each in an interpreter of its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_helpers import drawing

from digits.api.testing import child_environ, serve_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).parents[2]


def imported(module: str, log: str) -> bool:
    """Whether ``python -X importtime`` logged an import of ``module`` or of one of its own."""
    return re.search(rf"\|\s+{re.escape(module)}(\.\S+)?$", log, re.M) is not None


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_serve_worker_answers_without_torch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digits.sqlite3'}"
    log = tmp_path / "serve.log"
    # Every module the supervisor or its worker imports is logged as it is imported.
    env = {"PYTHONPROFILEIMPORTTIME": "1", "PYTHONPATH": str(REPO)}
    with serve_process(url, tmp_path / "data", workers=1, log_path=log, env=env) as (base, proc):
        for _ in range(3):
            response = httpx.post(
                f"{base}/api/predictions", files={"image": ("d.png", drawing(), "image/png")}
            )
            assert response.status_code == 201, response.text
        [worker] = _children(proc.pid)
        mapped = Path(f"/proc/{worker}/maps").read_text()
        assert "onnxruntime" in mapped  # the worker that answered runs the graph...
        assert "libtorch" not in mapped  # ...and holds no part of torch
    imports = log.read_text()
    assert imported("digits.api.app", imports) and imported("onnxruntime", imports)
    assert not imported("torch", imports)


def _imports(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=child_environ(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.mark.parametrize("command", ["predict", "read"])
def test_digits_predict_and_read_run_without_torch(tmp_path: Path, command: str) -> None:
    image = tmp_path / "seven.png"
    image.write_bytes(drawing())
    env = f"sqlite:///{tmp_path / 'digits.sqlite3'}"
    imports = _imports(
        "-c",
        "import os, sys; from digits.cli import main; "
        f"os.environ['DIGITS_DATABASE_URL'] = {env!r}; "
        f"os.environ['DIGITS_DATA_DIR'] = {str(tmp_path / 'data')!r}; "
        f"sys.exit(main([{command!r}, '--json', sys.argv[1]]))",
        str(image),
    )
    assert imported("onnxruntime", imports)
    assert not imported("torch", imports)


def test_the_ui_imports_without_torch() -> None:
    imports = _imports("-c", "import digits.ui.app, digits.ui.launch")  # every page, the client
    assert imported("digits.ui.views.draw", imports) and imported("digits.ui.client", imports)
    assert not imported("torch", imports)
