"""The error tree (``digits.errors``) -> HTTP answers, in one handler. Every error body is
``{"detail": ...}`` and no traceback ever reaches a client (it goes to the log, with the
request id)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from digits.db.session import is_connection_error
from digits.errors import (
    DatabaseUnavailableError,
    DigitsError,
    EmptyImageError,
    ImageTooLargeError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    UnsupportedImageError,
    UnsupportedMediaTypeError,
)

logger = logging.getLogger(__name__)
RETRY_AFTER_S = "5"

# Most specific first: the first branch an error belongs to gives its status.
STATUS: tuple[tuple[type[DigitsError], int], ...] = (
    (ImageTooLargeError, 413),
    (UnsupportedImageError, 415),
    (UnsupportedMediaTypeError, 415),
    (InvalidInputError, 422),
    (NotFoundError, 404),
    (UnavailableError, 503),
)


def status_of(error: DigitsError) -> int:
    return next((status for kind, status in STATUS if isinstance(error, kind)), 500)


async def _digits_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DigitsError)
    status = status_of(exc)
    detail = f"empty drawing: {exc}" if isinstance(exc, EmptyImageError) else str(exc)
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 or exc.retry_later else None
    if status == 500:
        logger.error("unmapped error", exc_info=exc)
        detail = "internal server error"
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, SQLAlchemyError) and is_connection_error(exc):
        unavailable = DatabaseUnavailableError("the database is unavailable; try again in a moment")
        return await _digits_error(request, unavailable)
    logger.error("database error", exc_info=exc)
    return JSONResponse(
        {"detail": "internal error while reading or writing the database"}, status_code=500
    )


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


def _methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route answers on ``path``: the routes sharing a path each know only
    their own, so a 405 from one of them would name only that one's."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute | Route) and route.path_regex.match(path) and route.methods:
            methods |= route.methods
    return sorted(methods)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_methods(request.app, request.url.path))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DigitsError, _digits_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(SQLAlchemyError, _database)
    app.add_exception_handler(Exception, _unexpected)
