"""Group commit: concurrent inserts share one transaction, so one disk flush serves many.

Leader/follower, no extra thread: the first caller to find no write in progress becomes the
leader, takes everything queued, writes it in one transaction and wakes the others with their
results. A lone caller (concurrency 1) writes at once, so latency is unchanged; under load
the number of commits (each an fsync) per prediction drops with the queue length.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from digits.db.session import Database, is_connection_error

In = TypeVar("In")
Out = TypeVar("Out")
MAX_BATCH = 64


@dataclass
class _Item(Generic[In, Out]):
    value: In
    result: Out | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommitter(Generic[In, Out]):
    """``submit(x)`` runs ``write(connection, x)`` inside a transaction shared with others.

    ``transaction(database)`` opens that transaction and gives what ``write`` writes with:
    ``Database.write_connection`` (a SQLAlchemy Connection, the default) or
    ``Database.dbapi_write`` (a DBAPI cursor).
    """

    def __init__(
        self,
        database: Database,
        write: Callable[[Any, In], Out],
        *,
        transaction: Callable[[Database], AbstractContextManager[Any]] = Database.write_connection,
    ) -> None:
        self.database = database
        self._write = write
        self._transaction = transaction
        self._cv = threading.Condition()
        self._queue: list[_Item[In, Out]] = []
        self._leading = False

    def submit(self, value: In) -> Out:
        item: _Item[In, Out] = _Item(value)
        with self._cv:
            self._queue.append(item)
            while self._leading and not item.done:
                self._cv.wait()
            if not item.done:
                self._leading = True
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            else:
                batch = []
        if batch:
            try:
                self._commit(batch)
            finally:
                with self._cv:
                    self._leading = False
                    self._cv.notify_all()
        if item.error is not None:
            raise item.error
        assert item.done
        return item.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Item[In, Out]]) -> None:
        try:
            with self._transaction(self.database) as connection:
                results = [self._write(connection, item.value) for item in batch]
        except SQLAlchemyError as exc:
            if len(batch) == 1 or is_connection_error(exc):
                for item in batch:
                    item.error, item.done = exc, True
                return
            # One bad item must not fail its neighbours: retry them one by one.
            for item in batch:
                self._commit([item])
            return
        except BaseException as exc:
            for item in batch:
                item.error, item.done = exc, True
            raise
        for item, result in zip(batch, results, strict=True):
            item.result, item.done = result, True
