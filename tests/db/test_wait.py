"""`digits serve` waits for its database: at once when it answers, a clear error when not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from digits.api.testing import free_port
from digits.db.wait import DatabaseUnavailableError, wait_for_database


def test_returns_at_once_when_the_database_answers(tmp_path: Path) -> None:
    wait_for_database(f"sqlite:///{tmp_path / 'up.sqlite3'}", timeout_s=0)


def test_logs_while_waiting_then_names_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://digits:pw@127.0.0.1:{free_port()}/digits"  # nothing listens there
    with caplog.at_level(logging.INFO), pytest.raises(DatabaseUnavailableError) as raised:
        wait_for_database(url, timeout_s=1.5)
    assert "DIGITS_DB_WAIT_S" in str(raised.value)
    assert any("waiting up to 2 s for the database" in r.getMessage() for r in caplog.records)
