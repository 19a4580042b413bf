"""The error tree answers with one status per branch, always as ``{"detail": ...}``, and a
503 always says when to try again."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from digits import errors
from digits.api import errors as handlers


@pytest.mark.parametrize(
    ("error", "status", "detail"),
    [
        (errors.EmptyImageError("nothing drawn"), 422, "empty drawing: nothing drawn"),
        (errors.ImageTooLargeError("too big"), 413, "too big"),
        (errors.UnsupportedImageError("not a PNG"), 415, "not a PNG"),
        (errors.UnsupportedMediaTypeError("send a form"), 415, "send a form"),
        (errors.PreprocessError("odd array"), 422, "odd array"),
        (errors.InvalidInputError("bad"), 422, "bad"),
        (errors.PredictionNotFoundError(uuid.UUID(int=7)), 404, f"no prediction with id {uuid.UUID(int=7)}"),
        (errors.NotFoundError("purged"), 404, "purged"),
        (errors.DatabaseUnavailableError("down"), 503, "down"),
        (errors.PredictionSpooledError("spooled"), 503, "spooled"),
        (errors.SpoolError("disk full"), 503, "disk full"),
        (errors.DigitsError("a bug"), 500, "internal server error"),
    ],
)  # fmt: skip
def test_each_branch_has_its_status(error: errors.DigitsError, status: int, detail: str) -> None:
    app = FastAPI()
    handlers.install(app)

    @app.get("/fail")
    def fail() -> None:
        raise error

    response = TestClient(app, raise_server_exceptions=False).get("/fail")
    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert ("retry-after" in response.headers) == (status == 503)
    if status == 503:
        assert int(response.headers["retry-after"]) > 0
