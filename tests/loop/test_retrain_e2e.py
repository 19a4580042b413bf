"""End to end: users correct a style the shipped model misreads, `digits retrain` promotes a
model that reads it, the running API switches to it (and back on rollback) without a restart and
without failing a request.

Everything goes through the real surfaces: a `digits serve` process on a temporary SQLite
database, HTTP predictions and corrections, the `digits retrain` and `digits models` commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from support import require

from digits import preprocess
from digits.api.testing import free_port
from digits.checkpoint import ServingCheckpoint
from digits.config import SHIPPED_WEIGHTS
from digits.db.migrate import upgrade_head
from digits.db.session import Database
from digits.loop.registry import Registry
from digits.predict import Predictor
from digits.read import numbers, probe
from digits.synth import drawings, glyphs

pytestmark = pytest.mark.slow

# The personal convention: see personal_style(). Drawn by the users for training (seeds from 0),
# and again, as new drawings never sent to the API, to measure errors (seeds from 10 000).
STYLE_DIGIT = 3
USERS_STYLE_DRAWINGS = 200
USERS_OTHER_DRAWINGS = 60
NEW_DRAWINGS = 150
NEW_SEED = 10_000
USERS = 13  # one session each: the gate judges whole sessions, out of fold
CONFIRMING_USERS = 4
DIGITS = [str(Path(sys.executable).parent / "digits")]


def personal_style(seed: int) -> np.ndarray:
    """A 3 written backwards, as many people (and most children, at first) do: an open-left
    "Ɛ" that MNIST-trained models read as an 8 with near certainty."""
    rng = np.random.default_rng([seed, 3033])
    style = ("round", "pointy")[seed % 2]
    strokes = glyphs.glyph_strokes(STYLE_DIGIT, style, rng, glyphs.random_quirks(rng, 0.7))
    mirrored = [np.column_stack([1.0 - s[:, 0], s[:, 1]]) for s in strokes]
    return drawings.draw(mirrored, drawings.random_look(rng, "normal"))


def ordinary_drawing(seed: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng([seed, 4041])
    digit = int(rng.integers(10))
    style = glyphs.STYLES[digit][int(rng.integers(len(glyphs.STYLES[digit])))]
    strokes = glyphs.glyph_strokes(digit, style, rng, glyphs.random_quirks(rng, 0.7))
    return drawings.draw(strokes, drawings.random_look(rng, "normal")), digit


def error_rate(model: ServingCheckpoint, drawings: list[np.ndarray], digit: int) -> float:
    predictor = Predictor(model)
    inputs = np.stack([preprocess.to_model_input(d) for d in drawings])
    return float((predictor.probabilities(inputs).argmax(axis=1) != digit).mean())


def new_sessions(client: httpx.Client, n: int) -> list[str]:
    """``n`` sessions issued by the server; their tokens."""
    tokens = []
    for _ in range(n):
        created = client.post("/api/sessions")
        assert created.status_code == 201, created.text
        tokens.append(created.json()["session_token"])
    return tokens


@dataclass
class Hammer:
    """A client sending predictions the whole time, recording every status and version."""

    base_url: str
    image: bytes
    statuses: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30.0) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(
                        "/api/predictions", files={"image": ("d.png", self.image, "image/png")}
                    )
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.statuses.append(response.status_code)
                if response.status_code == 201:
                    self.versions.append(response.json()["model_version"])
                time.sleep(0.05)

    def wait_for(self, version: str, timeout_s: float = 30.0) -> None:
        """Until this client's own answers come from ``version``: its keep-alive connection
        stays on one worker, which may switch up to a model check after the one polled."""
        deadline = time.monotonic() + timeout_s
        while not (self.versions and self.versions[-1] == version):
            assert time.monotonic() < deadline, f"the hammer was never served {version}"
            time.sleep(0.2)

    def __enter__(self) -> Hammer:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


@pytest.fixture
def env(tmp_path: Path, mnist_dir: Path) -> dict[str, str]:
    base = Path(os.environ.get("DIGITS_TEST_BASE_MODEL", SHIPPED_WEIGHTS))
    require(base.exists(), f"no weights at {base} (DIGITS_TEST_BASE_MODEL names others)")
    url = f"sqlite:///{tmp_path / 'digits.sqlite3'}"
    upgrade_head(url)
    if base != SHIPPED_WEIGHTS:
        registry = Registry(Database(url), shipped=base)
        registry.ensure()
        registry.database.dispose()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    return environ | {
        "DIGITS_DATA_DIR": str(tmp_path / "data"),
        "DIGITS_DATABASE_URL": url,
        "DIGITS_MNIST_DIR": str(mnist_dir),
        "DIGITS_LOG_LEVEL": "WARNING",
        "DIGITS_RATE_LIMIT": "0",  # one address sends every user's drawings
    }


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [*DIGITS, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the API did not become ready in 120 s")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def served_version(base_url: str) -> str:
    return str(httpx.get(f"{base_url}/api/model", timeout=10).json()["version"])


def wait_for_version(base_url: str, version: str, timeout_s: float = 30.0) -> float:
    started = time.monotonic()
    while served_version(base_url) != version:
        assert time.monotonic() - started < timeout_s, f"the API never served {version}"
        time.sleep(0.2)
    return time.monotonic() - started


def test_corrections_make_a_better_model_that_the_api_switches_to_and_back(
    server: str, env: dict[str, str]
) -> None:
    registry = Registry(Database(env["DIGITS_DATABASE_URL"]))
    shipped = registry.active_version()
    assert shipped is not None and served_version(server) == shipped
    new_drawings = [personal_style(NEW_SEED + i) for i in range(NEW_DRAWINGS)]
    errors_before = error_rate(registry.load(shipped), new_drawings, STYLE_DIGIT)
    assert errors_before >= 0.5, f"the shipped model already reads this style ({errors_before})"

    # Users draw (their style, and ordinary digits) and say what they drew.
    sent = [(personal_style(i), STYLE_DIGIT) for i in range(USERS_STYLE_DRAWINGS)]
    sent += [ordinary_drawing(i) for i in range(USERS_OTHER_DRAWINGS)]
    with httpx.Client(base_url=server, timeout=30) as client:
        users = new_sessions(client, USERS)
        for i, (image, label) in enumerate(sent):
            token = {"X-Session-Token": users[i % USERS]}
            posted = client.post(
                "/api/predictions",
                files={"image": ("d.png", drawings.to_png(image), "image/png")},
                data={"source": "canvas"},
                headers=token,
            )
            assert posted.status_code == 201, posted.text
            body = posted.json()
            assert body["model_version"] == shipped
            patched = client.patch(
                f"/api/predictions/{body['id']}", json={"true_label": label}, headers=token
            )
            assert patched.status_code == 200

    hammer_image = drawings.to_png(ordinary_drawing(99_999)[0])
    with Hammer(server, hammer_image) as hammer:
        started = time.monotonic()
        done = subprocess.run(
            [*DIGITS, "retrain", "--canvas-n", "100"],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        retrain_s = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-3000:]
        assert "fine-tune" in done.stderr  # progress was shown
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert summary["decision"] == "promoted", json.dumps(summary)
        candidate = summary["candidate"]
        switch_s = wait_for_version(server, candidate)
        hammer.wait_for(candidate)
        time.sleep(1.0)  # a few requests on the new model too
    assert hammer.errors == [] and set(hammer.statuses) == {201}, hammer.statuses
    assert hammer.versions[0] == shipped and hammer.versions[-1] == candidate

    report = json.loads((Path(summary["report"]) / "retrain.json").read_text())
    assert (Path(summary["report"]) / "retrain.md").exists()
    mnist = {name: report["results"][name]["mnist"]["accuracy"] for name in ("active", "candidate")}
    assert mnist["candidate"] >= mnist["active"] - 0.001
    errors_after = error_rate(registry.load(candidate), new_drawings, STYLE_DIGIT)
    assert errors_after <= errors_before / 3, (errors_before, errors_after)
    index = registry.read()
    assert index.models[candidate].parent == shipped
    assert index.models[candidate].data["corrections_train"] > 0
    # It carries a number-reader probe fitted on its own features, which its reader takes.
    promoted = registry.load(candidate)
    assert promoted.data[probe.DATA_KEY]["model_version"] == candidate
    reader = numbers.NumberReader(Predictor(promoted))
    assert reader.probe is not None and reader.probe.model_version == candidate

    with Hammer(server, hammer_image) as hammer:
        done = subprocess.run(
            [*DIGITS, "models", "rollback", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["active"] == shipped
        wait_for_version(server, shipped)
        hammer.wait_for(shipped)
        time.sleep(1.0)
    assert hammer.errors == [] and set(hammer.statuses) == {201}, hammer.statuses
    assert hammer.versions[-1] == shipped
    print(
        json.dumps(
            {
                "errors_before": errors_before,
                "errors_after": errors_after,
                "mnist": mnist,
                "retrain_s": round(retrain_s, 1),
                "switch_s": round(switch_s, 1),
                "heldout": {k: v["heldout"] for k, v in report["results"].items()},
            }
        )
    )


def test_a_candidate_no_better_on_the_corrections_is_refused_and_nothing_changes(
    server: str, env: dict[str, str]
) -> None:
    """The refusal path: users only confirm digits the shipped model already reads, so no
    candidate can be better where they corrected it; it is kept in the registry, unpromoted,
    and the API goes on serving the shipped model without a failed request."""
    registry = Registry(Database(env["DIGITS_DATABASE_URL"]))
    shipped = registry.active_version()
    assert shipped is not None
    with httpx.Client(base_url=server, timeout=30) as client:
        # Few users with many drawings each: sessions large enough for the gate to judge by.
        users = new_sessions(client, CONFIRMING_USERS)
        for seed in range(USERS_OTHER_DRAWINGS):
            image, digit = ordinary_drawing(seed)
            token = {"X-Session-Token": users[seed % CONFIRMING_USERS]}
            posted = client.post(
                "/api/predictions",
                files={"image": ("d.png", drawings.to_png(image), "image/png")},
                data={"source": "canvas"},
                headers=token,
            )
            assert posted.status_code == 201, posted.text
            body = posted.json()
            if body["digit"] != digit:
                continue  # only what the shipped model reads already
            patched = client.patch(
                f"/api/predictions/{body['id']}", json={"true_label": digit}, headers=token
            )
            assert patched.status_code == 200

    with Hammer(server, drawings.to_png(ordinary_drawing(99_999)[0])) as hammer:
        done = subprocess.run(
            [*DIGITS, "retrain", "--canvas-n", "100"],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        time.sleep(3.0)  # longer than a replica takes to notice a promotion
    assert summary["decision"] == "rejected", json.dumps(summary)
    assert summary["promoted"] is False and summary["active"] == shipped
    assert any("out-of-fold" in reason for reason in summary["reasons"])
    assert hammer.errors == [] and set(hammer.statuses) == {201}, hammer.statuses
    assert set(hammer.versions) == {shipped}
    assert served_version(server) == shipped

    index = registry.read()
    assert index.active == shipped
    assert [e.action for e in index.events] == ["initial"]
    candidate = index.models[summary["candidate"]]
    assert candidate.origin == "retrain" and candidate.parent == shipped
    assert registry.card(candidate.version) is not None  # its report, to read why
    registry.database.dispose()
