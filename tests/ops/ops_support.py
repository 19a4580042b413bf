"""The shared test helpers, for the ops tests (see tests/support.py)."""

from __future__ import annotations

from support import POSTGRES_ADMIN_URL, REPO_ROOT, postgres_reachable, require

__all__ = ["POSTGRES_ADMIN_URL", "REPO_ROOT", "postgres_reachable", "require"]
