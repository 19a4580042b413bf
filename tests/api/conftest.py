"""The API against a real database of each backend (SQLite always; PostgreSQL where it runs,
and always with CI=true), a small checkpoint, and helpers that draw test images."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from api_helpers import SESSION_HEADER, MakeClient, clear_database, new_session
from fastapi.testclient import TestClient

from digits import checkpoint as ckpt
from digits.api import create_app
from digits.config import Settings
from digits.db.testing import migrated_database
from digits.model import DigitNet
from digits.predict import Predictor

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A narrow, untrained network: the API's behaviour, not the model's accuracy, is tested."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    ckpt.save(ckpt.from_model(DigitNet(width=8), {"width": 8}), path)
    return path


@pytest.fixture(scope="session")
def predictor(checkpoint_path: Path) -> Predictor:
    # threshold 0: an untrained model's answers still count as "ok" unless a test says otherwise
    return Predictor(ckpt.read(checkpoint_path), uncertain_threshold=0.0, source=checkpoint_path)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    server = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    sqlite_file = tmp_path_factory.mktemp("sqlite") / "digits.sqlite3"
    with migrated_database(
        request.param, sqlite_file=sqlite_file, postgres_admin_url=server
    ) as url:
        yield url


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, checkpoint_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        model_path=checkpoint_path,
        spool_dir=tmp_path / "spool",
        log_json=True,
        rate_limit=0,  # tests send faster than a visitor may; test_ratelimit turns it on
    )


@pytest.fixture
def make_client(settings: Settings, predictor: Predictor) -> MakeClient:
    """``with make_client(max_body_bytes=...) as client:`` an app on a cleared database."""

    @contextmanager
    def make(
        *,
        predictor_override: Predictor | None = None,
        load_model: bool = False,
        session: bool = True,
        **overrides: Any,
    ) -> Iterator[TestClient]:
        """``session``: every request carries the X-Session-Token of one new session."""
        clear_database(settings.resolved_database_url)
        app_settings = settings.model_copy(update=overrides)
        served = None if load_model else predictor_override or predictor
        app = create_app(app_settings, predictor=served, run_maintenance=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            if session:
                client.headers[SESSION_HEADER] = new_session(client)
            yield client

    return make


@pytest.fixture
def client(make_client: MakeClient) -> Iterator[TestClient]:
    with make_client() as client:
        yield client
