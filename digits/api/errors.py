"""Domain errors -> HTTP answers, translated once here. Every error body is ``{"detail": ...}``
and no traceback ever reaches a client (it goes to the log, with the request id)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from digits.api.store import (
    DatabaseUnavailableError,
    PredictionNotFoundError,
    PredictionSpooledError,
)
from digits.db.session import is_connection_error
from digits.db.spool import SpoolError
from digits.decode import (
    EmptyImageError,
    ImageTooLargeError,
    PreprocessError,
    UnsupportedImageError,
)

logger = logging.getLogger(__name__)
RETRY_AFTER_S = "5"


def _error(status: int, detail: str, *, retry: bool = False) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER_S} if retry else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _preprocess(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc.__cause__, ImageTooLargeError):
        exc = exc.__cause__  # a size refusal wrapped on its way out of the decoder
    if isinstance(exc, EmptyImageError):
        return _error(422, f"empty drawing: {exc}")
    if isinstance(exc, ImageTooLargeError):
        return _error(413, str(exc))
    if isinstance(exc, UnsupportedImageError):
        return _error(415, str(exc))
    return _error(422, str(exc))


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return _error(404, f"no prediction with id {exc}")


async def _spooled(_: Request, exc: Exception) -> JSONResponse:
    return _error(503, str(exc), retry=True)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    return _error(503, str(exc), retry=True)


async def _spool_failed(_: Request, exc: Exception) -> JSONResponse:
    logger.error("the database is down and the spool cannot be written: %s", exc)
    return _error(
        503, "the database is unavailable and the local spool cannot be written", retry=True
    )


async def _database(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, SQLAlchemyError) and is_connection_error(exc):
        return _error(503, "the database is unavailable; try again in a moment", retry=True)
    logger.error("database error", exc_info=exc)
    return _error(500, "internal error while reading or writing the database")


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default echoes each bad input back; that fails on NaN/inf (not JSON) and is
    # the client's own data anyway, so only the location, message and type are returned.
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return _error(500, "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(PreprocessError, _preprocess)
    app.add_exception_handler(PredictionNotFoundError, _not_found)
    app.add_exception_handler(PredictionSpooledError, _spooled)
    app.add_exception_handler(DatabaseUnavailableError, _unavailable)
    app.add_exception_handler(SpoolError, _spool_failed)
    app.add_exception_handler(SQLAlchemyError, _database)
    app.add_exception_handler(Exception, _unexpected)
