"""Load test: N concurrent clients POST drawings to a fresh API on PostgreSQL for a fixed time.

Starts `digits serve` on a free loopback port against a new, throw-away PostgreSQL database,
drives it, then checks that zero answers were 5xx and that the database holds exactly one row
per successful answer. Prints throughput and latency percentiles. Loopback only, bounded in
time (at most 10 minutes) and in request count.

    .venv/bin/python benchmarks/load_test.py                  # 60 s, 16 clients
    .venv/bin/python benchmarks/load_test.py --duration 10    # a short run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

from digits.api.testing import serve_process
from digits.db.testing import temporary_postgres_database
from digits.synth import drawings, glyphs

ADMIN_URL = os.environ.get("DIGITS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MAX_DURATION_S = 600.0


def canvas_drawings() -> list[bytes]:
    """A few 280x280 canvas-like drawings (the project's own generator): black strokes on a
    transparent background, as the web canvas sends them."""
    look = drawings.Look(encoding="RGBA")
    return [
        drawings.to_png(drawings.draw(glyphs.glyph_strokes(d, glyphs.STYLES[d][0]), look))
        for d in (1, 7, 4, 3)
    ]


@contextmanager
def api_server(database_url: str, workers: int, data_dir: Path) -> Iterator[str]:
    with serve_process(
        database_url,
        data_dir,
        workers=workers,
        log_path=data_dir / "server.log",
        env={"DIGITS_LOG_LEVEL": "WARNING"},
    ) as (base, _):
        yield base


async def drive(
    base: str, concurrency: int, duration_s: float, max_requests: int
) -> tuple[list[float], Counter[int], int, float]:
    """Returns latencies of 2xx answers (s), status counts, transport errors, elapsed (s)."""
    images = canvas_drawings()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits, trust_env=False) as c:
        start = time.perf_counter()
        deadline = start + duration_s

        async def client(worker: int) -> None:
            nonlocal errors, sent
            n = worker
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                n += concurrency
                body = images[n % len(images)]
                began = time.perf_counter()
                try:
                    answer = await c.post(
                        "/api/predictions",
                        files={"image": ("drawing.png", body, "image/png")},
                        data={"source": "api"},
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                statuses[answer.status_code] += 1
                if answer.status_code // 100 == 2:
                    latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, statuses, errors, elapsed


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (max 600)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--postgres-url", default=ADMIN_URL, help="admin URL (creates a DB)")
    args = parser.parse_args(argv)
    duration = min(args.duration, MAX_DURATION_S)

    with (
        tempfile.TemporaryDirectory(prefix="digits-load-") as tmp,
        temporary_postgres_database(args.postgres_url, prefix="digits_load") as database_url,
        api_server(database_url, args.workers, Path(tmp)) as base,
    ):
        print(
            f"load: {args.concurrency} clients, {duration:.0f} s, {args.workers} API workers, "
            f"PostgreSQL, {base}",
            flush=True,
        )
        latencies, statuses, errors, elapsed = asyncio.run(
            drive(base, args.concurrency, duration, args.max_requests)
        )
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM predictions").fetchone()
        rows = int(row[0]) if row else 0

    ok = len(latencies)
    server_errors = sum(n for code, n in statuses.items() if code >= 500)
    ordered = sorted(latencies)
    ms = [1000 * percentile(ordered, q) for q in (0.5, 0.95, 0.99)]
    print(
        f"requests: {sum(statuses.values()) + errors}  statuses: {dict(sorted(statuses.items()))}"
    )
    print(f"transport errors: {errors}  5xx: {server_errors}")
    print(f"throughput: {ok / elapsed:.1f} stored predictions/s over {elapsed:.1f} s")
    print(f"latency (2xx): p50 {ms[0]:.1f} ms  p95 {ms[1]:.1f} ms  p99 {ms[2]:.1f} ms")
    print(f"rows in the database: {rows}  successful answers: {ok}")
    failed = []
    if server_errors:
        failed.append(f"{server_errors} answers were 5xx")
    if errors:
        failed.append(f"{errors} requests got no answer")
    if rows != ok:
        failed.append(f"{rows} rows for {ok} successful answers")
    if not ok:
        failed.append("no successful answer")
    if failed:
        print("FAIL: " + "; ".join(failed))
        return 1
    print("OK: zero 5xx, one row per successful answer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
