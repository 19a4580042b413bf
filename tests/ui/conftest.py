"""Page tests run against the real API app in this process (live_api.py); browser tests against
the running stack (e2e.py), one per test module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e import Stack, running_stack
from fastapi.testclient import TestClient
from live_api import InProcess, LiveApi, MakeApi, start_clock
from playwright.sync_api import Browser
from support import CHROMIUM_ARGS

from digits import checkpoint as ckpt
from digits.api import create_app
from digits.config import SHIPPED_WEIGHTS, Settings
from digits.db.migrate import upgrade_head
from digits.predict import Predictor
from digits.ui.client import ApiClient


@pytest.fixture(scope="session")
def shipped_checkpoint() -> ckpt.Checkpoint:
    # The pages are tested on what the app ships: without it they would test nothing real.
    assert SHIPPED_WEIGHTS.is_file(), f"the shipped weights are missing: {SHIPPED_WEIGHTS}"
    return ckpt.load(SHIPPED_WEIGHTS)


@pytest.fixture(scope="session")
def shipped_predictor(shipped_checkpoint: ckpt.Checkpoint) -> Predictor:
    return Predictor(ckpt.read(SHIPPED_WEIGHTS), source=SHIPPED_WEIGHTS)


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating takes longer than a copy)."""
    path = tmp_path_factory.mktemp("schema") / "digits.sqlite3"
    upgrade_head(f"sqlite:///{path}")
    return path


@pytest.fixture
def make_api(tmp_path: Path, migrated: Path, shipped_predictor: Predictor) -> MakeApi:
    """``with make_api(predictor=...) as api:`` the API on a fresh database."""

    @contextmanager
    def make(predictor: Predictor = shipped_predictor) -> Iterator[LiveApi]:
        database_file = tmp_path / "digits.sqlite3"
        shutil.copy(migrated, database_file)
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite:///{database_file}",
            spool_dir=tmp_path / "spool",
            log_json=False,
            rate_limit=0,
        )
        app = create_app(settings, predictor=predictor, run_maintenance=False)
        with TestClient(app) as app_client:
            transport = InProcess(app_client)
            shared = ApiClient("http://testserver", transport=transport)
            # One person's session, as the UI keeps one per browser.
            session = shared.create_session()
            client = shared.with_credentials(session_token=session.session_token)
            yield LiveApi(
                app,
                client,
                transport,
                app.state.store.database,
                start_clock(),
                session.session_id,
            )
            shared.close()

    return make


@pytest.fixture
def api(make_api: MakeApi) -> Iterator[LiveApi]:
    with make_api() as live:
        yield live


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
