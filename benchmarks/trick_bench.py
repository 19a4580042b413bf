"""What each speed trick of the serving road buys: server CPU per POST /api/predictions with
the trick, and with the plain way in its place.

The whole app runs in this process and is called directly as an ASGI application (no client,
no socket), one request at a time, with the canvas drawing the web UI sends. The measure is
the CPU time of this thread per request, which other load on the machine disturbs far less
than latency. Each round measures every variant in turn on the same app, and a variant's
figure is the median over rounds of its difference from the round's "all tricks" run.

    .venv/bin/python benchmarks/trick_bench.py --rounds 10
    .venv/bin/python benchmarks/trick_bench.py --database postgresql://postgres@127.0.0.1:5432/test

gc.freeze is for the tail (a full collection walks every object torch made); its mean effect
is small, and api_bench's p99 is where it shows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from digits import decode
from digits import preprocess as pp
from digits.api import create_app
from digits.config import SHIPPED_WEIGHTS, Settings
from digits.db import crud
from digits.db import session as db_session
from digits.db.migrate import upgrade_head
from digits.db.testing import temporary_postgres_database
from digits.predict import Predictor

CANVAS = (Path(__file__).with_name("drawings") / "canvas_7.png").read_bytes()
REQUESTS_PER_ROUND = 60


def _multipart() -> tuple[bytes, bytes]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="source"\r\n\r\ncanvas\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + CANVAS
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}".encode()


async def _post(app: Any, body: bytes, content_type: bytes) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/predictions", "raw_path": b"/api/predictions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "state": {},
        "headers": [
            (b"host", b"127.0.0.1"), (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ],
    }  # fmt: skip
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)  # the client never disconnects
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if statuses != [201]:
        raise RuntimeError(f"POST answered {statuses}")


def _swap(owner: Any, name: str, plain: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    trick = getattr(owner, name)
    return (lambda: setattr(owner, name, plain)), (lambda: setattr(owner, name, trick))


def _orm_insert(session: Any, *, row: Any) -> Any:
    session.add(row)
    session.flush()
    session.expunge(row)
    return row.id


def _plain_border_level(plane: np.ndarray) -> int:
    return int(np.median(np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]])))


def _plain_block_mean(work: np.ndarray, step: int = pp.WORK_SCALE) -> np.ndarray:
    h, w = work.shape[0] // step, work.shape[1] // step
    return work.reshape(h, step, w, step).mean(axis=(1, 3))


def _plain_numpy() -> tuple[Callable[[], None], Callable[[], None]]:
    swaps = [
        _swap(pp, "_border_level", _plain_border_level),
        _swap(pp, "block_mean", _plain_block_mean),
        _swap(pp, "_black", lambda colour: False),  # every transparent canvas is composited
    ]
    return (lambda: [on() for on, _ in swaps]), (lambda: [off() for _, off in swaps])


def _transaction_for_every_write() -> tuple[Callable[[], None], Callable[[], None]]:
    write = db_session.Database.write

    def plain(self: Any, *, one_statement: bool = False) -> Any:
        return write(self, one_statement=False)

    return _swap(db_session.Database, "write", plain)


# variant -> (switch to the plain way, switch back)
VARIANTS: dict[str, Callable[[], tuple[Callable[[], None], Callable[[], None]]]] = {
    "Pillow decodes every PNG (no libspng)": lambda: _swap(decode, "_SPNG_MODES", frozenset()),
    "ORM add + flush (no precompiled Core insert)": lambda: _swap(
        crud, "record_prediction", _orm_insert
    ),
    "a transaction for every write (no autocommit)": _transaction_for_every_write,
    "ping at every checkout (pool_pre_ping)": lambda: _swap(db_session, "PING_AFTER_IDLE_S", 0.0),
    "no gc.freeze": lambda: (gc.unfreeze, lambda: (gc.collect(), gc.freeze())),
    "plain numpy (median, reshape-mean, composite)": _plain_numpy,
}


async def measure(url: str, rounds: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="digits-tricks-") as tmp:
        upgrade_head(url)
        settings = Settings(data_dir=Path(tmp), database_url=url, log_level="WARNING")
        predictor = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
        app = create_app(settings, predictor=predictor, run_maintenance=False)
        cpu: dict[str, list[float]] = {"all tricks": [], **{name: [] for name in VARIANTS}}
        async with app.router.lifespan_context(app):
            logging.disable(logging.INFO)
            for _ in range(20):  # warm up: caches, pools, the first compiled statements
                await _post(app, *_multipart())
            for _ in range(rounds):
                for name in cpu:
                    on, off = VARIANTS[name]() if name in VARIANTS else (lambda: None,) * 2
                    bodies = [_multipart() for _ in range(REQUESTS_PER_ROUND)]
                    on()
                    started = time.thread_time()
                    for body in bodies:
                        await _post(app, *body)
                    cpu[name].append((time.thread_time() - started) / len(bodies) * 1000)
                    off()
        return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database", help="a PostgreSQL server's admin URL; default: SQLite")
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.database:
            url = stack.enter_context(temporary_postgres_database(args.database, prefix="tricks"))
        else:
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/t.sqlite3"
        cpu = asyncio.run(measure(url, args.rounds))
    base = cpu["all tricks"]
    print(f"server CPU per POST, median of {args.rounds} rounds, {url.split(':')[0]}")
    print(f"{'all tricks':48} {statistics.median(base):6.2f} ms")
    for name, values in cpu.items():
        if name != "all tricks":
            extra = statistics.median(v - b for v, b in zip(values, base, strict=True))
            print(f"{name:48} {extra:+6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
