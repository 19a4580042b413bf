"""A real PostgreSQL outage, without stopping the shared server: the app talks to PostgreSQL
through a TCP proxy that the test cuts (dropping live connections mid-stream) and restores.
Every acknowledged prediction ends up as exactly one row, every acknowledged correction as its
label, replayed by the app's own background task."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from api_helpers import SESSION_HEADER, drawing, new_session
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from digits.api import app as app_module
from digits.api import create_app
from digits.config import Settings
from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow
from digits.db.session import Database
from digits.db.testing import temporary_postgres_database
from digits.predict import Predictor

pytestmark = pytest.mark.postgres


class TcpProxy:
    """127.0.0.1:<port> -> upstream; ``cut()`` refuses and drops, ``restore()`` serves again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown wakes the thread blocked in accept(); close() alone would not
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._live:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._live.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._live |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxied_database(postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    with temporary_postgres_database(postgres_url, prefix="digits_outage") as url:
        upgrade_head(url)
        parsed = make_url(url)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        proxy.restore()
        try:
            yield parsed.set(port=proxy.port).render_as_string(hide_password=False), proxy
        finally:
            proxy.cut()


def test_postgres_outage_mid_stream_loses_nothing(
    proxied_database: tuple[str, TcpProxy],
    tmp_path,  # type: ignore[no-untyped-def]
    predictor: Predictor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, proxy = proxied_database
    monkeypatch.setattr(app_module, "REPLAY_INTERVAL_S", 0.2)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, spool_dir=tmp_path / "spool")
    app = create_app(settings, predictor=predictor)
    created: list[str] = []
    labels: dict[str, int] = {}
    drawing_ids: dict[str, str] = {}
    image = drawing()

    def traffic(client: TestClient, n: int) -> None:
        for i in range(n):
            drawing_id = str(uuid.uuid4())
            response = client.post(
                "/api/predictions",
                files={"image": ("d.png", image, "image/png")},
                data={"drawing_id": drawing_id},
            )
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
            drawing_ids[response.json()["id"]] = drawing_id
            if i % 2 == 0:
                label = (len(created) * 7) % 10
                patched = client.patch(
                    f"/api/predictions/{created[-1]}", json={"true_label": label}
                )
                assert patched.status_code == 200, patched.text
                labels[created[-1]] = label

    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers[SESSION_HEADER] = new_session(client)
        traffic(client, 10)
        proxy.cut()
        traffic(client, 12)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["database"]["status"] == "degraded"
        assert ready.json()["spool_depth"] > 0
        proxy.restore()
        traffic(client, 10)
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["spool_depth"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/readyz").json() | {"checks": None} == {
            "status": "ok",
            "checks": None,
            "spool_depth": 0,
        }

    database = Database(url)
    try:
        with database.read() as session:
            rows = {str(r.id): r for r in session.scalars(select(PredictionRow))}
            count = session.scalar(select(func.count()).select_from(PredictionRow))
    finally:
        database.dispose()
    assert count == len(rows) == len(set(created)) == 32  # every 201 once, no duplicates
    assert set(rows) == set(created)
    assert {i: rows[i].true_label for i in labels} == labels
    assert all(str(rows[i].drawing_id) == d for i, d in drawing_ids.items())


def test_database_down_at_startup_is_migrated_and_filled_later(
    postgres_url: str,
    tmp_path,  # type: ignore[no-untyped-def]
    predictor: Predictor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "REPLAY_INTERVAL_S", 0.2)
    with temporary_postgres_database(postgres_url, prefix="digits_late") as real_url:
        parsed = make_url(real_url)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))  # not listening yet
        url = parsed.set(port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(data_dir=tmp_path / "data", database_url=url, spool_dir=tmp_path / "s")
        with TestClient(create_app(settings, predictor=predictor)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"]["database"]["status"] == "degraded"
            first = client.post(
                "/api/predictions", files={"image": ("d.png", drawing(), "image/png")}
            ).json()
            client.headers[SESSION_HEADER] = first["session_token"]  # a session, database down
            ids = [first["id"]] + [
                client.post(
                    "/api/predictions", files={"image": ("d.png", drawing(), "image/png")}
                ).json()["id"]
                for _ in range(2)
            ]
            proxy.restore()
            deadline = time.monotonic() + 30
            while client.get("/readyz").json()["status"] != "ok" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.get("/readyz").json()["status"] == "ok"
            assert client.get("/api/predictions").json()["total"] == 3
            assert {client.get(f"/api/predictions/{i}").status_code for i in ids} == {200}
        proxy.cut()
