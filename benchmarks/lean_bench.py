"""What serving costs without torch: `digits serve` from start to /readyz 200 on a database
already migrated, and one API worker's memory after 300 predictions.

A temporary SQLite database is migrated and given the shipped weights first (as an upgraded
deployment's would be); then `digits serve --workers 1` is started and timed to its first
/readyz 200 (with the CPU seconds its processes had used by then, which a machine busy with
other work inflates less than the wall time, and the load average), 300 canvas drawings are
posted one after another, and the worker's VmRSS is read from /proc, with whether it mapped
any part of torch. One JSON line on stdout.

    .venv/bin/python benchmarks/lean_bench.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from digits.api.testing import DIGITS, child_environ, free_port
from digits.db.migrate import upgrade_head
from digits.db.session import Database
from digits.loop.registry import Registry

PREDICTIONS = 300


def drawing() -> bytes:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=22)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def wait_ready(base: str, started: float) -> float:
    """Seconds from ``started`` to the first /readyz 200, polled every 20 ms."""
    with httpx.Client(base_url=base, timeout=2) as client:
        while time.perf_counter() - started < 120:
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return time.perf_counter() - started
            time.sleep(0.02)
    raise RuntimeError("not ready within 120 s")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def worker_of(supervisor: int) -> int:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text()
    [worker] = [int(pid) for pid in children.split()]
    return worker


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lean-bench-") as tmp:
        url = f"sqlite:///{tmp}/digits.sqlite3"
        upgrade_head(url)
        registry = Registry(Database(url))
        registry.ensure()
        registry.database.dispose()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        environ = child_environ(
            DIGITS_DATABASE_URL=url, DIGITS_DATA_DIR=f"{tmp}/data", DIGITS_RATE_LIMIT="0"
        )
        argv = [str(DIGITS), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            ready_s = wait_ready(base, started)
            start_cpu_s = cpu_s(process.pid) + cpu_s(worker_of(process.pid))
            with httpx.Client(base_url=base, timeout=30) as client:
                body = drawing()
                for _ in range(PREDICTIONS):
                    response = client.post(
                        "/api/predictions", files={"image": ("d.png", body, "image/png")}
                    )
                    response.raise_for_status()
            worker = worker_of(process.pid)
            maps = Path(f"/proc/{worker}/maps").read_text()
            result = {
                "ready_s": round(ready_s, 2),
                "start_cpu_s": round(start_cpu_s, 2),
                "load_average_1min": os.getloadavg()[0],
                "predictions": PREDICTIONS,
                "worker_vmrss_mib": round(status_kib(worker, "VmRSS") / 1024, 1),
                "supervisor_vmrss_mib": round(status_kib(process.pid, "VmRSS") / 1024, 1),
                "torch_mapped": "libtorch" in maps,
                "onnxruntime_mapped": "onnxruntime" in maps,
            }
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
