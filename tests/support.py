"""Constants and helpers shared by test modules (import as ``from support import ...``).

They live here rather than in conftest.py: several folders have a conftest.py of their own, so
``from conftest import`` would find whichever was loaded first.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO_ROOT.parent / "shared" / "mnist"
POSTGRES_ADMIN_URL = os.environ.get(
    "DIGITS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
CHROMIUM = os.environ.get("DIGITS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(available: bool, reason: str) -> None:
    """Skip (locally) or fail (CI) a test whose outside dependency is missing."""
    if available:
        return
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False
