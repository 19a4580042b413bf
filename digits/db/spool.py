"""A durable local queue for writes the database could not take.

Each process appends JSON lines to its own file under the spool directory and fsyncs before the
API answers, so an acknowledged prediction or correction survives a crash of the process, the
database, or both. The owner holds an exclusive ``flock`` on its file for its whole life; a file
whose lock can be taken therefore belongs to a stopped process, and is adopted (copied into the
live spool, then deleted) so that nothing a dead worker or replica acknowledged is lost.

Replay is the caller's ``apply`` function, called in order; it must be idempotent, because a
crash between a successful replay and the truncation replays the same entries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from digits.errors import SpoolError

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
Entry = dict[str, Any]


class Applied(Enum):
    DONE = "done"
    # Not applicable yet (a correction whose prediction is still in another spool): keep it.
    DEFERRED = "deferred"


def _read_entries(handle: Any) -> list[Entry]:
    """Complete JSON lines from the start of ``handle``; a torn last line (crash) is dropped."""
    handle.seek(0)
    entries: list[Entry] = []
    for number, raw in enumerate(handle.read().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            logger.warning("skipping a torn spool line", extra={"line": number})
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


class Spool:
    """This process's spool file plus the orphans of stopped processes in the same directory.

    The file is the only copy of the entries (nothing is kept in memory but their count), so a
    long outage costs disk, not RAM.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self.path = directory / name
        self._lock = threading.RLock()
        self._replay_lock = threading.Lock()
        self._count = 0
        self._handle: Any = None

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+b")
        except OSError as exc:
            raise SpoolError(f"cannot open the spool at {self.path}: {exc}") from exc
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        self._handle = handle

    def close(self) -> None:
        with self._lock:
            if self._handle is None:
                return
            self._handle.close()
            self._handle = None
            if self._count == 0:
                self.path.unlink(missing_ok=True)

    @property
    def depth(self) -> int:
        """Entries acknowledged to clients but not yet in the database."""
        return self._count

    @property
    def writable(self) -> bool:
        return self._handle is not None and os.access(self.directory, os.W_OK)

    def pending(self) -> list[Entry]:
        """This process's entries, oldest first (read back from the file)."""
        with self._lock:
            return [] if self._handle is None else _read_entries(self._handle)

    def append(self, entry: Entry) -> None:
        """Write one entry and fsync it; raises SpoolError when that is impossible."""
        self.append_many([entry])

    def append_many(self, entries: list[Entry]) -> None:
        """Write entries with one fsync; all of them or (after a failed write) none."""
        if not entries:
            return
        data = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)
        with self._lock:
            if self._handle is None:
                raise SpoolError("the spool is not open")
            size = os.fstat(self._handle.fileno()).st_size
            try:
                self._handle.seek(0, os.SEEK_END)
                self._handle.write(data)
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError as exc:
                # Cut a partial line off, or the next entry would be glued to it and lost.
                with contextlib.suppress(OSError):
                    self._handle.truncate(size)
                raise SpoolError(f"cannot write the spool at {self.path}: {exc}") from exc
            self._count += len(entries)

    def others(self) -> Iterator[Entry]:
        """Entries in other processes' files (live or not), read-only, for lookups."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            try:
                with path.open("rb") as handle:
                    yield from _read_entries(handle)
            except OSError:
                continue

    def adopt_orphans(self) -> int:
        """Move entries left by stopped processes into this spool; returns how many."""
        adopted = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            try:
                handle = path.open("r+b")
            except OSError:
                continue
            with handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # its process is alive and replays it itself
                if os.fstat(handle.fileno()).st_nlink == 0:
                    continue  # another process adopted and deleted it meanwhile
                entries = _read_entries(handle)
                self.append_many(entries)
                # Only after our copies are on disk; a crash in between duplicates, never loses.
                path.unlink(missing_ok=True)
                adopted += len(entries)
                if entries:
                    logger.info(
                        "adopted a stopped process's spool",
                        extra={"file": path.name, "entries": len(entries)},
                    )
        return adopted

    def replay(self, apply: Callable[[list[Entry]], list[Applied]]) -> int:
        """Apply pending entries in order; keep deferred ones. Returns how many were applied.

        ``apply`` gets a batch and returns one result per entry; an exception (the database is
        still down) leaves the unapplied entries pending for the next try. The bulk is applied
        while requests keep appending; what arrived meanwhile is applied with appends held
        back, so a busy process does end with an empty spool and goes back to direct writes.
        """
        with self._replay_lock:
            snapshot = self.pending()
            if not snapshot:
                return 0
            results = apply(snapshot)
            kept = [e for e, r in zip(snapshot, results, strict=True) if r is Applied.DEFERRED]
            applied = len(snapshot) - len(kept)
            with self._lock:
                arrived = self.pending()[len(snapshot) :]
                try:
                    late = apply(arrived) if arrived else []
                except BaseException:
                    self._rewrite(kept + arrived)
                    raise
                kept += [e for e, r in zip(arrived, late, strict=True) if r is Applied.DEFERRED]
                applied += sum(1 for r in late if r is not Applied.DEFERRED)
                self._rewrite(kept)
            return applied

    def _rewrite(self, remaining: list[Entry]) -> None:
        """Make the file hold exactly ``remaining``; called with the lock held."""
        if not remaining:
            self._handle.truncate(0)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._count = 0
            return
        tmp = self.path.with_suffix(".tmp")
        handle = tmp.open("w+b")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        for entry in remaining:
            handle.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
        tmp.replace(self.path)
        self._handle.close()
        self._handle = handle
        self._count = len(remaining)
