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

from digits.db.session import Database, WriterBusyError, is_connection_error

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
    ``Database.dbapi_write`` (a DBAPI cursor). ``submit_now`` needs a ``transaction`` that
    takes ``wait=False`` and then raises WriterBusyError rather than wait, as the latter does.
    """

    def __init__(
        self,
        database: Database,
        write: Callable[[Any, In], Out],
        *,
        transaction: Callable[..., AbstractContextManager[Any]] = Database.write_connection,
    ) -> None:
        self.database = database
        self._write = write
        self._transaction = transaction
        self._cv = threading.Condition()
        self._queue: list[_Item[In, Out]] = []
        self._leading = False

    def submit(self, value: In) -> Out:
        result = self._submit(value, wait=True)
        assert result is not None
        return result[0]

    def submit_now(self, value: In) -> tuple[Out] | None:
        """Write ``value`` now if no other write is queued or running, in this process or (with
        ``transaction(database, wait=False)`` refusing) another; else None, nothing written.
        For a caller that must not block, such as an event loop."""
        return self._submit(value, wait=False)

    def _submit(self, value: In, *, wait: bool) -> tuple[Out] | None:
        item: _Item[In, Out] = _Item(value)
        with self._cv:
            if not wait and (self._leading or self._queue):
                return None
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
                self._commit(batch, wait=wait)
            except WriterBusyError:
                return None  # only when not waiting: then the batch is this one item
            finally:
                with self._cv:
                    self._leading = False
                    self._cv.notify_all()
        if item.error is not None:
            raise item.error
        assert item.done
        return (item.result,)  # type: ignore[return-value]

    def _commit(self, batch: list[_Item[In, Out]], *, wait: bool = True) -> None:
        options = {} if wait else {"wait": False}
        try:
            with self._transaction(self.database, **options) as connection:
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
        except WriterBusyError:
            raise
        except BaseException as exc:
            for item in batch:
                item.error, item.done = exc, True
            raise
        for item, result in zip(batch, results, strict=True):
            item.result, item.done = result, True
