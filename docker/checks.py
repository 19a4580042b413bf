"""The checks of scripts/test-containers.sh, one subcommand each; exit 0 when the check holds.

The script has started the stack (compose project `digitsct`, files in $DIGITS_CT_WORK/stack);
these talk to it the way an operator would: a browser on the UI's published port, `docker exec`
into the containers, psql in the PostgreSQL container. The last line printed is the detail the
script shows beside the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCKER = os.environ.get("DIGITS_CT_DOCKER", "docker")
WORK = Path(os.environ.get("DIGITS_CT_WORK", "/tmp"))
STACK = WORK / "stack"
STATE = WORK / "state.json"
PROJECT = "digitsct"
COMPOSE = [
    "docker-compose",
    "--project-directory",
    str(STACK),
    "-f",
    str(STACK / "compose.yaml"),
    "-f",
    str(STACK / "compose.test.yaml"),
]

# Runs inside a container of the image (Pillow and httpx are there): posts drawings to the API
# named in argv[1] for argv[2] seconds, a fresh connection each, so Docker's DNS spreads them
# over the replicas; prints one JSON line per acknowledged prediction, then "done".
STREAM = r"""
import io, json, sys, time, httpx
from PIL import Image, ImageDraw
url, seconds = sys.argv[1], float(sys.argv[2])
image = Image.new("L", (280, 280), 255)
ImageDraw.Draw(image).line([(150, 45), (150, 235)], fill=0, width=18)
buffer = io.BytesIO(); image.save(buffer, format="PNG"); png = buffer.getvalue()
deadline, failures = time.monotonic() + seconds, 0
while time.monotonic() < deadline:
    try:
        with httpx.Client(base_url=url, timeout=15, trust_env=False) as client:
            r = client.post("/api/predictions?source=upload", content=png,
                            headers={"content-type": "image/png"})
        if r.status_code == 201:
            print(json.dumps({"id": r.json()["id"]}), flush=True)
        else:
            failures += 1
            print(json.dumps({"status": r.status_code, "body": r.text[:200]}), flush=True)
    except httpx.HTTPError as exc:
        failures += 1
        print(json.dumps({"error": str(exc)[:200]}), flush=True)
    time.sleep(0.05)
print("done", flush=True)
"""


# Runs inside an API container (the package's drawing synthesiser needs numpy and Pillow only):
# argv[2] sessions draw a 3 written backwards (which MNIST-trained models read as an 8) and some
# ordinary digits, send them to the API named in argv[1] and correct every answer, as
# tests/loop/test_retrain_e2e.py does; a candidate fine-tuned on them passes the promotion gate.
# Prints the number of corrections.
SEED = r"""
import sys
import httpx
import numpy as np
from digits.synth import drawings, glyphs
url, sessions = sys.argv[1], int(sys.argv[2])

def backwards_three(seed):
    rng = np.random.default_rng([seed, 3033])
    strokes = glyphs.glyph_strokes(3, ("round", "pointy")[seed % 2], rng,
                                   glyphs.random_quirks(rng, 0.7))
    mirrored = [np.column_stack([1.0 - s[:, 0], s[:, 1]]) for s in strokes]
    return drawings.draw(mirrored, drawings.random_look(rng, "normal")), 3

def ordinary(seed):
    rng = np.random.default_rng([seed, 4041])
    digit = int(rng.integers(10))
    style = glyphs.STYLES[digit][int(rng.integers(len(glyphs.STYLES[digit])))]
    strokes = glyphs.glyph_strokes(digit, style, rng, glyphs.random_quirks(rng, 0.7))
    return drawings.draw(strokes, drawings.random_look(rng, "normal")), digit

sent = [backwards_three(i) for i in range(200)] + [ordinary(i) for i in range(60)]
# A token-less POST starts a session; its token keeps the user's next drawings in it.
tokens = [None] * sessions
with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
    for i, (image, label) in enumerate(sent):
        token = tokens[i % sessions]
        headers = {"X-Session-Token": token} if token else {}
        posted = client.post("/api/predictions", headers=headers,
                             files={"image": ("d.png", drawings.to_png(image), "image/png")},
                             data={"source": "canvas"})
        posted.raise_for_status()
        body = posted.json()
        tokens[i % sessions] = token = body.get("session_token") or token
        client.patch(f"/api/predictions/{body['id']}", json={"true_label": label},
                     headers={"X-Session-Token": token}).raise_for_status()
print(len(sent))
"""


def run(*argv: str, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, input=stdin, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}\n{result.stderr[-2000:]}")
    return result.stdout


def containers(service: str) -> list[str]:
    out = run(
        DOCKER,
        "ps",
        "-q",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    )
    return sorted(out.split())


def health(container: str) -> str:
    return run(DOCKER, "inspect", "--format", "{{.State.Health.Status}}", container).strip()


def wait_healthy(timeout: float, apis: int = 1) -> str:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = {s: containers(s) for s in ("postgres", "api", "ui", "trainer")}
        states = {c[:12]: health(c) for cs in found.values() for c in cs}
        if (
            len(found["api"]) == apis
            and all(found.values())
            and all(v == "healthy" for v in states.values())
        ):
            return f"{len(states)} containers healthy"
        time.sleep(2)
    raise AssertionError(f"not healthy in {timeout:.0f} s: {states}")


def psql(sql: str) -> str:
    (postgres,) = containers("postgres")
    return run(DOCKER, "exec", postgres, "psql", "-U", "digits", "-d", "digits", "-tAc", sql)


def api_get(container: str, path: str) -> dict[str, Any]:
    """GET on one replica through its loopback port (docker/compose.test.yaml publishes it)."""
    return api_call(container, "GET", path)


def api_call(container: str, method: str, path: str, *, admin: bool = False) -> dict[str, Any]:
    address = run(DOCKER, "port", container, "8000/tcp").split()[0]
    request = urllib.request.Request(f"http://{address}{path}", method=method)
    if admin:
        request.add_header("Authorization", f"Bearer {dotenv()['DIGITS_ADMIN_TOKEN']}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def dotenv() -> dict[str, str]:
    """The .env the script generated for the stack."""
    lines = (STACK / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def active_version() -> str:
    return str(api_get(containers("api")[0], "/api/model")["version"])


def stream(container: str, url: str, seconds: float) -> list[dict[str, Any]]:
    out = run(
        DOCKER,
        "exec",
        "-i",
        container,
        "python",
        "-",
        url,
        str(seconds),
        stdin=STREAM,
        timeout=seconds + 120,
    )
    lines = out.splitlines()
    assert lines and lines[-1] == "done", out[-2000:]
    return [json.loads(line) for line in lines[:-1]]


def stored(ids: list[str]) -> int:
    if not ids:
        return 0
    quoted = ",".join(f"'{i}'" for i in ids)
    return int(psql(f"SELECT count(*) FROM predictions WHERE id IN ({quoted})").strip())


def wait_stored(ids: list[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = stored(ids)
    while count < len(ids) and time.monotonic() < deadline:
        time.sleep(2)
        count = stored(ids)
    return count


def cmd_healthy(args: argparse.Namespace) -> str:
    return wait_healthy(float(args.value))


def cmd_draw(args: argparse.Namespace) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from playwright.sync_api import sync_playwright
    from support import CHROMIUM, CHROMIUM_ARGS

    ui = os.environ["DIGITS_CT_UI"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(ui, wait_until="domcontentloaded")
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for(timeout=60_000)
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        x0, y0 = box["x"], box["y"]
        for stroke in ([(150, 45), (128, 70)], [(150, 45), (150, 235)]):
            page.mouse.move(x0 + stroke[0][0], y0 + stroke[0][1])
            page.mouse.down()
            (xa, ya), (xb, yb) = stroke
            for i in range(1, 17):
                page.mouse.move(x0 + xa + (xb - xa) * i / 16, y0 + ya + (yb - ya) * i / 16)
            page.mouse.up()
            page.wait_for_timeout(300)
        page.get_by_text("Was it right?").wait_for(timeout=60_000)
        # The correction: label it 7, whatever was read, so the stored label is ours.
        page.get_by_role("radiogroup").last.get_by_role("radio", name="7", exact=True).click()
        page.get_by_text("Saved: a 7").wait_for(timeout=60_000)
        browser.close()
    rows = psql("SELECT digit, true_label, source FROM predictions WHERE source = 'canvas'").split()
    assert len(rows) == 1 and rows[0].split("|")[1:] == ["7", "canvas"], rows
    total = int(psql("SELECT count(*) FROM predictions").strip())
    STATE.write_text(json.dumps({"rows": total, "active": active_version()}))
    return f"row in PostgreSQL: digit|label|source = {rows[0]}"


def cmd_restart(args: argparse.Namespace) -> str:
    wait_healthy(240)
    before = json.loads(STATE.read_text())
    rows = int(psql("SELECT count(*) FROM predictions").strip())
    labelled = int(psql("SELECT count(*) FROM predictions WHERE true_label = 7").strip())
    active = active_version()
    assert rows == before["rows"] and labelled == 1, (rows, labelled, before)
    assert active == before["active"], (active, before)
    return f"{rows} rows, active model {active}"


def log_count(container: str, since: str, needle: str) -> int:
    """Lines of the container's log since `since` (UTC, its own clock) that hold `needle`."""
    logs = subprocess.run(
        [DOCKER, "logs", "--since", since, container],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(1 for line in (logs.stdout + logs.stderr).splitlines() if needle in line)


def workers(container: str) -> int:
    """The --workers of the container's `digits serve` command (1 when it has none)."""
    argv = json.loads(run(DOCKER, "inspect", "--format", "{{json .Config.Cmd}}", container))
    return int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 1


def per_replica(apis: list[str], since: str) -> dict[str, int]:
    return {c[:12]: log_count(c, since, "POST /api/predictions 201") for c in apis}


def cmd_scale(args: argparse.Namespace) -> str:
    replicas = int(args.value)
    wait_healthy(300, apis=replicas)
    apis = containers("api")
    since = run(DOCKER, "exec", apis[0], "date", "-u", "+%Y-%m-%dT%H:%M:%SZ").strip()
    answers = stream(containers("ui")[0], "http://api:8000", 20)
    ids = [a["id"] for a in answers if "id" in a]
    assert len(ids) == len(answers) and ids, answers[:5]
    counts = per_replica(apis, since)
    assert sum(1 for n in counts.values() if n > 0) == replicas, counts
    count = wait_stored(ids, 30)
    assert count == len(ids), (count, len(ids))
    return f"{len(ids)} predictions, per replica {sorted(counts.values())}, all stored"


def cmd_outage(args: argparse.Namespace) -> str:
    outage = float(args.value)
    (postgres,) = containers("postgres")
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            answers.extend(stream(containers("ui")[0], "http://api:8000", outage + 20))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(5)
    run(DOCKER, "stop", "--time", "10", postgres)
    time.sleep(outage)
    run(DOCKER, "start", postgres)
    thread.join()
    assert not errors, errors
    ids = [a["id"] for a in answers if "id" in a]
    assert ids, answers[:5]
    wait_healthy(120, apis=len(containers("api")))
    count = wait_stored(ids, 90)
    assert count == len(ids), f"{len(ids) - count} of {len(ids)} acknowledged predictions lost"
    refused = len(answers) - len(ids)
    return f"{len(ids)} acknowledged, all stored ({refused} not acknowledged)"


def cmd_promote(args: argparse.Namespace) -> str:
    limit = float(args.value)
    apis = containers("api")
    # Checkpoints are written with torch, which only the train image holds.
    (trainer,) = containers("trainer")
    make = (
        "import dataclasses, sys; from digits import checkpoint; "
        "from digits.config import SHIPPED_WEIGHTS; "
        "c = checkpoint.load(SHIPPED_WEIGHTS); "
        "c = dataclasses.replace(c, temperature=c.temperature * 1.001, parent=c.version); "
        "checkpoint.save(c, __import__('pathlib').Path('/tmp/promoted.pt'))"
    )
    run(DOCKER, "exec", trainer, "python", "-c", make, timeout=180)
    added = json.loads(
        run(DOCKER, "exec", trainer, "digits", "models", "add", "/tmp/promoted.pt", "--json")
    )
    version = added["version"]
    since = run(DOCKER, "exec", apis[0], "date", "-u", "+%Y-%m-%dT%H:%M:%SZ").strip()
    run(DOCKER, "exec", trainer, "digits", "models", "promote", version, timeout=180)
    promoted = time.monotonic()
    took = served_by_all(apis, version, since, limit, promoted)
    return (
        f"{version} served by {len(apis)} replicas ({sum(workers(c) for c in apis)} workers) "
        f"after {took:.1f} s"
    )


def served_by_all(apis: list[str], version: str, since: str, limit: float, start: float) -> float:
    """Seconds from ``start`` until every replica serves ``version``; fails after ``limit``."""
    # A replica runs several worker processes, each holding its own model, and one answer
    # comes from one of them: a replica is done when it answers with the new version and every
    # worker has logged its swap.
    expected = {c: workers(c) for c in apis}
    waiting = set(apis)
    while waiting and time.monotonic() - start < limit:
        waiting = {
            c
            for c in waiting
            if api_get(c, "/api/model")["version"] != version
            or log_count(c, since, "model swapped") < expected[c]
        }
        time.sleep(0.5)
    assert not waiting, f"{len(waiting)} of {len(apis)} replicas still serve the old model"
    return time.monotonic() - start


def cmd_retrain(args: argparse.Namespace) -> str:
    limit = float(args.value)
    apis = containers("api")
    (trainer,) = containers("trainer")
    before = active_version()
    seeded = run(
        DOCKER,
        "exec",
        "-i",
        apis[0],
        "python",
        "-",
        "http://api:8000",
        "13",
        stdin=SEED,
        timeout=900,
    ).split()[-1]
    since = run(DOCKER, "exec", apis[0], "date", "-u", "+%Y-%m-%dT%H:%M:%SZ").strip()
    job = api_call(apis[0], "POST", "/api/admin/retrain", admin=True)["job_id"]
    started = time.monotonic()
    seen: list[float] = []
    while True:
        state = api_call(apis[0], "GET", f"/api/admin/retrain/{job}", admin=True)
        seen.append(state["progress"])
        if state["state"] in {"done", "failed"}:
            break
        assert time.monotonic() - started < limit, f"job {state['state']} after {limit:.0f} s"
        time.sleep(5)
    took = time.monotonic() - started
    report = state["report"] or {}
    assert state["state"] == "done", state
    assert report.get("decision") == "promoted", json.dumps(report)[:1500]
    assert log_count(trainer, since, f"retraining job {job}") >= 1, "not run by the trainer"
    version = report["candidate"]
    assert version != before and report["active"] == version, report
    switched = served_by_all(apis, version, since, 30, time.monotonic())
    reports = sorted({round(p, 1) for p in seen})
    return (
        f"{seeded} corrections; job done in {took:.0f} s (progress seen {reports}), "
        f"{version} served by {len(apis)} replicas {switched:.1f} s later"
    )


def stack_file() -> Path:
    """compose.yaml resolved with its .env, then with what swarm refuses taken out (build,
    depends_on conditions) and the replicas set: docker/stack.yaml documents the same."""
    import yaml

    resolved = yaml.safe_load(
        run(
            "docker-compose",
            "--project-directory",
            str(STACK),
            "-f",
            str(STACK / "compose.yaml"),
            "-f",
            str(Path(__file__).with_name("stack.yaml")),
            "config",
        )
    )
    resolved["version"] = "3.8"
    for service in resolved["services"].values():
        service.pop("build", None)
        service.pop("depends_on", None)
        service.pop("restart", None)
        service.pop("ports", None)  # the test reaches the services with docker exec
    path = WORK / "stack.yaml"
    path.write_text(yaml.safe_dump(resolved))
    return path


def task_containers(service: str) -> list[str]:
    out = run(DOCKER, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}")
    return sorted(out.split())


def cmd_swarm(args: argparse.Namespace) -> str:
    replicas = int(args.value)
    run(DOCKER, "swarm", "init", "--advertise-addr", "127.0.0.1")
    run(DOCKER, "stack", "deploy", "-c", str(stack_file()), PROJECT, timeout=300)
    deadline = time.monotonic() + 300
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        apis = task_containers(f"{PROJECT}_api")
        found = apis + [
            c for s in ("postgres", "trainer") for c in task_containers(f"{PROJECT}_{s}")
        ]
        states = {c[:12]: health(c) for c in found}
        if (
            len(apis) == replicas
            and len(found) == replicas + 2
            and all(v == "healthy" for v in states.values())
        ):
            break
        time.sleep(3)
    else:
        raise AssertionError(f"stack not healthy in 300 s: {states}")
    answers = stream(apis[0], "http://api:8000", 10)
    ids = [a["id"] for a in answers if "id" in a]
    assert ids and len(ids) == len(answers), answers[:5]
    (postgres,) = task_containers(f"{PROJECT}_postgres")
    quoted = ",".join(f"'{i}'" for i in ids)
    count = run(
        DOCKER,
        "exec",
        postgres,
        "psql",
        "-U",
        "digits",
        "-d",
        "digits",
        "-tAc",
        f"SELECT count(*) FROM predictions WHERE id IN ({quoted})",
    )
    assert int(count) == len(ids), (count, len(ids))
    return f"{replicas} API tasks and the trainer healthy, {len(ids)} predictions stored"


COMMANDS: dict[str, Callable[[argparse.Namespace], str]] = {
    "healthy": cmd_healthy,
    "draw": cmd_draw,
    "restart": cmd_restart,
    "scale": cmd_scale,
    "outage": cmd_outage,
    "promote": cmd_promote,
    "retrain": cmd_retrain,
    "swarm": cmd_swarm,
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("value", nargs="?", default="0")
    args = parser.parse_args()
    try:
        detail = COMMANDS[args.command](args)
    except Exception as exc:
        sys.stderr.write(f"{args.command}: {type(exc).__name__}: {exc}\n")
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        sys.stdout.write(first + "\n")
        return 1
    sys.stdout.write(detail + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
