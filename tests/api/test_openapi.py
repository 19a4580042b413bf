"""The OpenAPI document describes the API. Schemathesis runs against the app in-process as
``st run --checks all`` would: every phase (examples, coverage, fuzzing with valid and invalid
inputs, and the stateful phase that follows its links: POST, then GET or PATCH of the returned
id), every check. It finds nothing: no 5xx, no undocumented status, header or body, no invalid
input accepted, no valid input refused, methods and ``Allow`` as documented."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from api_helpers import blank, drawing
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.engine import Status, events, from_schema

from digits.api import create_app
from digits.config import Settings
from digits.db.migrate import upgrade_head
from digits.predict import Predictor

# Random bytes are almost never an image: most raw bodies are real drawings, so that
# predictions are stored and the links from POST have ids to follow.
IMAGES = st.sampled_from([drawing(), drawing(140), drawing(mode="RGB"), blank()]) | st.binary()
schemathesis.openapi.media_type("image/png", IMAGES)

CONFIG = {
    "generation": {"max-examples": 25},
    "cache": {"enabled": False},  # no .schemathesis folder left in the checkout
    "operations": [
        {
            # The schema says "PNG or JPEG bytes" but cannot say "bytes that decode to a
            # drawing": a schema-valid body may still be refused (415 not an image, 422 a
            # blank drawing). Every other check applies to the POST as to every operation.
            # Nor can it say which X-Session-Token the server issued: another is a 401.
            "include-name": "POST /api/predictions",
            "checks": {"positive_data_acceptance": {"expected-statuses": [201, 401, 415, 422]}},
        },
        {
            # The same for a number; nor can it say "at most 64 strokes and 4,096 points".
            "include-name": "POST /api/numbers",
            "checks": {"positive_data_acceptance": {"expected-statuses": [201, 401, 415, 422]}},
        },
    ],
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, predictor: Predictor) -> Iterator[FastAPI]:
    data = tmp_path_factory.mktemp("openapi")
    url = f"sqlite:///{data / 'digits.sqlite3'}"
    upgrade_head(url)
    served = create_app(
        Settings(
            data_dir=data,
            database_url=url,
            spool_dir=data / "spool",
            log_level="WARNING",
            rate_limit=0,  # a fuzzer writes faster than one visitor may
        ),
        predictor=predictor,
        run_maintenance=False,
    )
    with TestClient(served):  # runs the lifespan: model, database, spool
        yield served


def test_schemathesis_finds_nothing(app: FastAPI) -> None:
    config = schemathesis.Config.from_dict(CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    problems: list[str] = []
    phases: dict[str, int] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phases[event.phase.name] = phases.get(event.phase.name, 0) + 1
            for checks in event.recorder.checks.values():
                problems += [
                    f"{event.label} [{check.name}]: {check.failure_info.failure}"
                    for check in checks
                    if check.status == Status.FAILURE and check.failure_info is not None
                ]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"{getattr(event, 'label', '')}: {event.info.format()}")
    assert not problems, "\n\n".join(dict.fromkeys(problems))
    # The stateful phase ran: the links from POST were found and followed.
    assert {"EXAMPLES", "COVERAGE", "FUZZING", "STATEFUL_TESTING"} <= set(phases), phases
