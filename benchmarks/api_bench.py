"""Latency and throughput of the prediction API, on SQLite and PostgreSQL, loopback only.

For each database: start `digits serve` (uvicorn) on 127.0.0.1 with a fresh database, then for
concurrency 1, 4 and 16 send POST /api/predictions with a 280x280 PNG drawing for a fixed time
(every request is stored; the row count is checked against the 201s), and the same load on
GET /healthz as the floor.

The drawing is the PNG the web UI sends: a canvas encoded by Chromium (drawings/canvas_7.png,
made by make_canvas_drawing.py). The same strokes saved by Pillow are also measured at
concurrency 1 ("pillow png" rows): zlib inflates Pillow's long runs of zeros byte by byte,
so that file takes ~0.4 ms longer to decode, and the gap is shown rather than hidden. In the same run, the same load against the typical implementation
the issue measured (typical_server.py: one sync worker, eager torch, no database write), so
both come from the same machine state. Prints one table.

    .venv/bin/python benchmarks/api_bench.py --workers 2        # ~3 s per cell, all backends
    .venv/bin/python benchmarks/api_bench.py --seconds 2 --backends sqlite --workers 2

The load generator is a minimal asyncio HTTP/1.1 keep-alive client in this process (the server
is another process), so the client costs as little CPU as possible on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from digits.api.testing import free_port
from digits.config import SHIPPED_WEIGHTS, Settings
from digits.db.models import PredictionRow
from digits.db.session import Database
from digits.db.testing import temporary_postgres_database

TARGETS = "targets: p50 <= 5 ms at c=1; >= 250 stored predictions/s at c=4, no fewer than typical; p99 <= 50 ms at c=4"


CANVAS_DRAWING = Path(__file__).with_name("drawings") / "canvas_7.png"


def canvas_png() -> bytes:
    """A "7" on a 280x280 canvas, as Chromium's toDataURL encodes it (what the UI sends)."""
    return CANVAS_DRAWING.read_bytes()


def drawing_png() -> bytes:
    """The same kind of drawing, saved by Pillow."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=18)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def multipart_request(
    port: int,
    png: bytes,
    token: str | None = None,
    *,
    path: str = "/api/predictions",
    fields: dict[str, str] | None = None,
) -> bytes:
    """The POST the web UI sends; with ``token``, as that session (as the UI does)."""
    session = f"X-Session-Token: {token}\r\n" if token else ""
    boundary = uuid.uuid4().hex
    form = {"source": "canvas", **(fields or {})}
    body = (
        (
            "".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                for name, value in form.items()
            )
            + f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{session}"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def session_token(port: int) -> str:
    answer = httpx.post(f"http://127.0.0.1:{port}/api/sessions", timeout=30)
    answer.raise_for_status()
    return str(answer.json()["session_token"])


def get_request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def _client(
    port: int, request: bytes, deadline: float, out: list[float], codes: list[int]
) -> None:
    """Requests back to back on one keep-alive connection, reconnecting (inside the timed
    request, as a real client would) when the server closes it after a response."""
    connection = None
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if connection is None:
                connection = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = connection
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length, close = 0, False
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
                close = close or line.replace(b" ", b"") == b"connection:close"
            await reader.readexactly(length)
            out.append(time.perf_counter() - started)
            codes.append(status)
            if close:
                writer.close()
                connection = None
    finally:
        if connection is not None:
            connection[1].close()


def warm_up(port: int, request: bytes, concurrency: int, seconds: float) -> None:
    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_client(port, request, deadline, [], []) for _ in range(concurrency))
        )

    asyncio.run(main())


def run_load(port: int, request: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    codes: list[int] = []

    async def main() -> float:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(_client(port, request, deadline, latencies, codes) for _ in range(concurrency))
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "n": len(ordered),
        "ok": sum(1 for c in codes if c < 300),
        "errors": sum(1 for c in codes if c >= 300),
        "rps": len(ordered) / elapsed,
        "p50": statistics.median(ordered) * 1000,
        "p95": pct(0.95),
        "p99": pct(0.99),
    }


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += _tree(int(child))
    return pids


def cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU of the server and each of its workers, by pid: robust to a busy
    machine, unlike wall time."""
    ticks = {}
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[each] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return ticks


def ensure_model(workdir: Path) -> Path:
    if SHIPPED_WEIGHTS.exists():
        return SHIPPED_WEIGHTS
    # No shipped weights yet: an untrained network of the same architecture costs the same.
    from digits import checkpoint
    from digits.model import DigitNet

    path = workdir / "model.pt"
    checkpoint.save(checkpoint.from_model(DigitNet(), {}), path)
    return path


def start_server(
    url: str | None, workdir: Path, model: Path, workers: int
) -> tuple[subprocess.Popen[bytes], int]:
    """Our server on a fresh database, or (url None) the typical implementation."""
    port = free_port()
    if url is None:
        command = [sys.executable, str(Path(__file__).with_name("typical_server.py")), str(port)]
        env = dict(os.environ)
    else:
        code = f"from digits.api.server import serve; serve('127.0.0.1', {port}, {workers})"
        command = [sys.executable, "-c", code]
        env = {
            **os.environ,
            "DIGITS_DATABASE_URL": url,
            "DIGITS_DATA_DIR": str(workdir / "data"),
            "DIGITS_MODEL_PATH": str(model),
            "DIGITS_LOG_LEVEL": "WARNING",
            "DIGITS_UNCERTAIN_THRESHOLD": "0",
            "DIGITS_RATE_LIMIT": "0",
        }
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError("the server exited during startup")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not become ready within 60 s")


def stored_rows(url: str) -> int:
    database = Database(url)
    try:
        with database.read() as session:
            return session.scalar(select(func.count()).select_from(PredictionRow)) or 0
    finally:
        database.dispose()


def measure(
    pid: int, port: int, request: bytes, concurrency: int, seconds: float
) -> dict[str, float]:
    before = cpu_seconds(pid)
    result = run_load(port, request, concurrency, seconds)
    used = [cpu - before.get(each, 0.0) for each, cpu in cpu_seconds(pid).items()]
    result["cpu_ms"] = sum(used) * 1000 / max(1, result["n"])
    # Keep-alive connections stay with the worker that accepted them: when one worker holds
    # most of them, it is the bottleneck while the other core idles.
    result["busiest"] = 100 * max(used) / max(sum(used), 1e-9)
    return result


def bench_backend(
    name: str, url: str | None, workdir: Path, model: Path, args: argparse.Namespace
) -> list[tuple[str, str, int, dict[str, float]]]:
    process, port = start_server(url, workdir, model, args.workers)
    rows = []
    try:
        # One person's session: every request checks its token, as the UI's do.
        token = session_token(port) if url else None
        predict = multipart_request(port, canvas_png(), token)
        health = get_request(port, "/healthz")
        loads = [("POST /api/predictions", predict, c) for c in args.concurrency]
        loads.insert(1, ("POST (pillow png)", multipart_request(port, drawing_png(), token), 1))
        for endpoint, request, concurrency in loads:
            warm_up(port, request, concurrency, 1.0)
            before = stored_rows(url) if url else 0
            result = measure(process.pid, port, request, concurrency, args.seconds)
            if url:
                result["stored"] = stored_rows(url) - before
            rows.append((name, endpoint, concurrency, result))
            if endpoint.startswith("POST /api"):
                result = measure(process.pid, port, health, concurrency, args.seconds)
                rows.append((name, "GET /healthz", concurrency, result))
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["sqlite", "postgres", "typical"],
        default=["sqlite", "postgres", "typical"],
        help="typical: the baseline of the issue (one sync worker, eager torch, no database)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=Settings.model_fields["workers"].default,
        help="default: the default worker count of `digits serve`",
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get(
            "DIGITS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="digits-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        model = ensure_model(workdir)
        for backend in args.backends:
            url: str | None = None
            if backend == "sqlite":
                url = f"sqlite:///{workdir / 'bench.sqlite3'}"
            elif backend == "postgres":
                url = stack.enter_context(
                    temporary_postgres_database(args.postgres_admin_url, prefix="digits_bench")
                )
            results += bench_backend(backend, url, workdir / backend, model, args)

    load = os.getloadavg()[0]
    print(
        f"\nworkers={args.workers}, {args.seconds:g} s per cell, model={model.name}, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs; {TARGETS}"
    )
    header = f"{'db':9} {'endpoint':22} {'c':>3} {'n':>6} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} {'stored':>6} {'cpu ms/req':>10} {'busiest worker':>14}"
    print(header)
    print("-" * len(header))
    for backend, endpoint, concurrency, r in results:
        stored = str(int(r["stored"])) if "stored" in r else "-"
        print(
            f"{backend:9} {endpoint:22} {concurrency:>3} {int(r['n']):>6} {r['rps']:>8.1f} "
            f"{r['p50']:>7.2f} {r['p95']:>7.2f} {r['p99']:>7.2f} {int(r['errors']):>6} {stored:>6} "
            f"{r['cpu_ms']:>10.2f} {r['busiest']:>13.0f}%"
        )
    bad = [r for *_, r in results if r["errors"] or ("stored" in r and r["stored"] != r["ok"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
