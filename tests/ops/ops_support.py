"""The shared test helpers of tests/conftest.py, for the ops tests.

Several folders have a conftest.py, and pytest imports each of them as a module named
``conftest``, so ``from conftest import ...`` finds whichever came first. This loads the root one
by path under a name of its own. (In a whole-suite run, ``from conftest import`` in a test
module gets the conftest of the last folder collected before it, e.g. tests/registry's.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "digits_tests_root_conftest", Path(__file__).resolve().parent.parent / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

REPO_ROOT: Path = _root.REPO_ROOT
POSTGRES_ADMIN_URL: str = _root.POSTGRES_ADMIN_URL
require = _root.require
postgres_reachable = _root.postgres_reachable

__all__ = ["POSTGRES_ADMIN_URL", "REPO_ROOT", "postgres_reachable", "require"]
