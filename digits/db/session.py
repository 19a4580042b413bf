"""Engine and session factory: one ``Database`` per process, made in the API lifespan or CLI."""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 3
PING_AFTER_IDLE_S = 1.0


def normalize_url(url: str | URL) -> URL:
    """Accept a plain ``postgresql://`` (or ``postgres://``) URL and use the psycopg 3 driver."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is switched off so that BEGIN is ours: writes use
        # BEGIN IMMEDIATE, which waits on busy_timeout instead of failing with SQLITE_BUSY when a
        # read transaction would have to be upgraded under a concurrent writer.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # FULL: a committed prediction survives power loss, which the 201 promises.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def to_json(value: Any) -> str:
    """JSON columns' serializer: pydantic-core's writes floats faster than ``json.dumps``
    (the ten probabilities of every prediction), and they read back as the same floats."""
    return pydantic_core.to_json(value).decode()


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    parsed = normalize_url(url)
    kwargs.setdefault("json_serializer", to_json)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_timeout", 5)
        # Last in, first out: under light load the same few connections (and PostgreSQL
        # backends) serve every request, so they stay warm and never sit idle long enough to
        # need a ping.
        kwargs.setdefault("pool_use_lifo", True)
        engine = create_engine(
            parsed, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}, **kwargs
        )
        _ping_when_idle(engine)
        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before use when it sat idle for PING_AFTER_IDLE_S or more:
    long enough for the server to have restarted or dropped it. SQLAlchemy's pool_pre_ping
    tests every checkout, a round trip per request that costs 0.3-0.5 ms of CPU per
    prediction (benchmarks/trick_bench.py). One found dead is replaced at
    once (the pool retries on DisconnectionError); one that died in use is invalidated by the
    error, and the write that met it goes to the spool."""

    @event.listens_for(engine, "connect")  # just opened: nothing to test yet
    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_S:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()  # end the transaction the driver began for it
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"a pooled connection is dead: {exc}") from exc


class Database:
    """The engine plus read and write session scopes."""

    def __init__(self, url: str | URL, **engine_kwargs: Any) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # SQLite has one writer at a time. Queueing writers on a thread lock (this process) and
        # an flock (other worker processes) wakes the next one the moment the previous commits;
        # SQLite's own busy handler sleep-polls with growing back-off (tens of ms), which is
        # what long tail latencies are made of. busy_timeout stays as the last resort.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._lock_file: Any = None
        database = self.url.database
        if self.is_sqlite and database and database != ":memory:":
            lock_path = Path(database).with_name(Path(database).name + ".write.lock")
            with contextlib.suppress(OSError):  # a read-only or missing directory: no flock
                self._lock_file = lock_path.open("a")

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def read_one(self) -> Iterator[Connection]:
        """A Core connection for one read statement, run in autocommit on PostgreSQL: no BEGIN
        and ROLLBACK round trips around it. For the session check that comes with every
        request (digits.api.sessions)."""
        with self.engine.connect() as connection:
            if not self.is_sqlite:
                connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    @contextmanager
    def write(self, *, one_statement: bool = False) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on error.

        ``one_statement``: the caller sends a single statement (tests/db/test_crud.py checks
        the one caller). PostgreSQL then runs it in autocommit, as its own transaction: as
        durable as BEGIN, statement, COMMIT, in one round trip instead of three. The CPU it
        saves is within noise (about 0.1 ms a prediction, benchmarks/trick_bench.py); the two
        round trips are what it buys.
        """
        with self._writer(), self._sessions() as session, session.begin():
            if self.is_sqlite:
                session.connection(execution_options={"sqlite_immediate": True})
            elif one_statement:
                session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session

    @contextmanager
    def _writer(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            if self._lock_file is None:
                yield
                return
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    def ping(self) -> None:
        """Raise the driver's error when the database cannot answer."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def is_connection_error(error: BaseException) -> bool:
    """True for 'the database is not there' failures, as opposed to bugs in our SQL."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    if isinstance(error, PoolTimeoutError):
        return True
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or isinstance(
            error, OperationalError | InterfaceError
        )
    return False
