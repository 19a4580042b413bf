"""The spool file itself: durable lines, nothing glued together after a failed write, replay
keeps what arrives meanwhile and what must wait."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from digits.db.spool import Applied, Spool, SpoolError


def _lines(spool: Spool) -> list[dict]:
    return [json.loads(line) for line in spool.path.read_bytes().splitlines()]


def test_a_failed_write_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append({"op": "label", "id": "a"})

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full_disk)
        with pytest.raises(SpoolError):
            spool.append({"op": "label", "id": "b"})
    spool.append({"op": "label", "id": "c"})
    assert [e["id"] for e in _lines(spool)] == ["a", "c"]
    assert spool.depth == 2


def test_replay_keeps_deferred_and_newly_arrived_entries(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append_many([{"op": "prediction", "id": "1"}, {"op": "label", "id": "2"}])

    def apply(entries: list[dict]) -> list[Applied]:
        if entries[0]["id"] == "1":
            spool.append({"op": "prediction", "id": "3"})  # a request during the replay
        return [Applied.DONE if e["op"] == "prediction" else Applied.DEFERRED for e in entries]

    assert spool.replay(apply) == 2  # "3" arrived during the replay and was applied too
    assert [e["id"] for e in _lines(spool)] == ["2"]
    assert spool.depth == 1
    assert spool.replay(lambda entries: [Applied.DONE] * len(entries)) == 1
    assert spool.depth == 0 and spool.path.read_bytes() == b""
    spool.append({"op": "label", "id": "4"})  # still writable after the rewrite
    assert [e["id"] for e in spool.pending()] == ["4"]
    spool.replay(lambda entries: [Applied.DONE] * len(entries))
    spool.close()
    assert not spool.path.exists()  # an empty spool is removed on a clean shutdown


def test_replay_failure_keeps_everything(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append({"op": "label", "id": "x"})

    def down(entries: list[dict]) -> list[Applied]:
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError):
        spool.replay(down)
    assert spool.depth == 1 and [e["id"] for e in _lines(spool)] == ["x"]
    spool.close()
    assert spool.path.exists()  # left for the next process to adopt
