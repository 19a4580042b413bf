"""Wait for the database at start-up, so that a replica started before its database (swarm and
Kubernetes ignore compose's `depends_on`) serves once it is up instead of crash-looping."""

from __future__ import annotations

import logging
import time

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from digits.db.session import make_engine

logger = logging.getLogger(__name__)

RETRY_EVERY_S = 1.0


class DatabaseUnavailableError(RuntimeError):
    """The database did not answer within DIGITS_DB_WAIT_S."""


def wait_for_database(url: str, *, timeout_s: float) -> None:
    """Return once `SELECT 1` succeeds; raise after `timeout_s` seconds of failures."""
    engine = make_engine(url)
    deadline = time.monotonic() + timeout_s
    logged = False
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                if logged:
                    logger.info("database is up")
                return
            except OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailableError(
                        f"the database did not answer within {timeout_s:.0f} s "
                        f"(DIGITS_DB_WAIT_S): {exc.orig or exc}"
                    ) from exc
                if not logged:
                    logger.warning(
                        "waiting up to %.0f s for the database (DIGITS_DB_WAIT_S): %s",
                        timeout_s,
                        exc.orig or exc,
                    )
                    logged = True
                time.sleep(RETRY_EVERY_S)
    finally:
        engine.dispose()
