"""A flood of large images must not slow one person drawing on the canvas.

Starts `digits serve` (its default worker count, rate limits off) on a fresh SQLite database.
For ``--seconds`` (default 15), eight clients send 4096x4096 PNGs as fast as the server answers
them (201, or 413 when a worker's large-image budget is full), while one person sends canvas
drawings one after another in a session of their own: every one of the person's answers must be
a 201. Prints the person's latency percentiles (the target: p50 <= 100 ms), the flood's
answers, and the server's memory (the peak sum of its processes' resident sets). Loopback only.

    .venv/bin/python benchmarks/flood_bench.py [--seconds 15] [--flooders 8]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from digits.api.testing import serve_process
from digits.config import Settings
from digits.db.migrate import upgrade_head

CANVAS = Path(__file__).with_name("drawings") / "canvas_7.png"


def large_png(side: int = 4096) -> bytes:
    """A 7 drawn across a 4096x4096 white page: about 70 KB, 16.8 Mpx once decoded."""
    image = Image.new("L", (side, side), 255)
    s = side / 280
    ImageDraw.Draw(image).line(
        [(70 * s, 60 * s), (210 * s, 60 * s), (120 * s, 230 * s)], fill=0, width=int(18 * s)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and every descendant (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def run(seconds: float, flooders: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="flood-bench-"))
    url = f"sqlite:///{work / 'digits.sqlite3'}"
    upgrade_head(url)
    big, canvas = large_png(), CANVAS.read_bytes()
    stop = threading.Event()
    flood: Counter[int] = Counter()
    person: list[float] = []
    person_statuses: Counter[int] = Counter()
    peak = [0]
    lock = threading.Lock()
    workers = Settings.model_fields["workers"].default
    with serve_process(url, work / "data", workers=workers, log_path=work / "server.log") as (
        base,
        process,
    ):

        def flooder() -> None:
            with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
                while not stop.is_set():
                    try:
                        answer = client.post(
                            "/api/predictions", files={"image": ("big.png", big, "image/png")}
                        )
                        status = answer.status_code
                    except httpx.HTTPError:
                        status = 0
                    with lock:
                        flood[status] += 1

        def drawer(token: str) -> None:
            headers = {"X-Session-Token": token}
            with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
                while not stop.is_set():
                    began = time.perf_counter()
                    answer = client.post(
                        "/api/predictions",
                        files={"image": ("drawing.png", canvas, "image/png")},
                        data={"source": "canvas"},
                        headers=headers,
                    )
                    person.append(time.perf_counter() - began)
                    person_statuses[answer.status_code] += 1

        token = httpx.post(f"{base}/api/sessions", timeout=30).json()["session_token"]
        threads = [threading.Thread(target=flooder) for _ in range(flooders)]
        threads.append(threading.Thread(target=drawer, args=(token,)))
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            peak[0] = max(peak[0], _tree_rss_bytes(process.pid))
            time.sleep(0.25)
        stop.set()
        for thread in threads:
            thread.join()
    ordered = sorted(person)
    return {
        "seconds": seconds,
        "flooders": flooders,
        "workers": workers,
        "person_requests": len(person),
        "person_statuses": dict(person_statuses),
        "person_p50_ms": round(statistics.median(ordered) * 1000, 1),
        "person_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
        "flood_statuses": {str(k): v for k, v in sorted(flood.items())},
        "server_peak_rss_mib": round(peak[0] / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--flooders", type=int, default=8)
    args = parser.parse_args(argv)
    result = run(min(args.seconds, 300.0), args.flooders)
    print(
        f"person: {result['person_requests']} drawings, p50 {result['person_p50_ms']} ms, "
        f"p99 {result['person_p99_ms']} ms, statuses {result['person_statuses']}\n"
        f"flood ({args.flooders} clients, 4096x4096 PNG): {result['flood_statuses']}\n"
        f"server memory (peak RSS, all processes): {result['server_peak_rss_mib']} MiB"
    )
    print(json.dumps(result))
    every_one_stored = result["person_statuses"] == {201: result["person_requests"]}
    return 0 if every_one_stored else 1


if __name__ == "__main__":
    sys.exit(main())
