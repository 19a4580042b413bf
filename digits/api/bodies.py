"""The image POSTs (``/api/predictions``, ``/api/numbers``) take three kinds of body, each
parsed by FastAPI from its own path operation's signature: a form (``UploadFile`` and
fields), a JSON body model, and a raw image with its fields as query parameters. The operation
is chosen by the request's Content-Type; digits.api.app merges their request bodies into the
one POST the OpenAPI document describes (it keeps one operation per path and method)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from digits.errors import NotFoundError, UnsupportedMediaTypeError
from digits.schemas import ErrorOut, Submission

_WHY = {
    400: "The body could not be parsed (malformed JSON text or form)",
    401: "No X-Session-Token (or admin token), or an unknown, expired or deleted one",
    413: "Body or image over the configured limit",
    415: "Not a PNG or JPEG, or a body of another content type",
    422: "Empty drawing, or invalid fields or parameters",
    503: "The database is unavailable (Retry-After says when to try again)",
}
MEDIA_TYPES = {
    "form": frozenset({"multipart/form-data"}),
    "json": frozenset({"application/json"}),
    "png": frozenset({"image/png"}),
    "jpeg": frozenset({"image/jpeg"}),
}

# A stored image's 200.
PNG_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
}

# A raw image body's fields. Every POST declares them, so that one document describes the
# operation; a form or JSON body carries its own fields, and its query is only validated.
SubmissionQuery = Annotated[Submission, Query()]


class ImageRemovedError(NotFoundError):
    """The record is stored, but its drawing was dropped by the retention policy."""


def png_answer(data: bytes | None) -> Response:
    """A stored image's 200, or a 404 when retention dropped it (None)."""
    if data is None:
        raise ImageRemovedError("the stored drawing was removed by the retention policy")
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )


def errors(*statuses: int, what: str) -> dict[int | str, dict[str, Any]]:
    """The documented error answers; a 404 says there is no such ``what`` for the caller."""
    why = _WHY | {404: f"No {what} with this id (another session's too)"}
    return {status: {"model": ErrorOut, "description": why[status]} for status in statuses}


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


def _accepting(media_types: frozenset[str] | None) -> type[APIRoute]:
    """A path operation that matches only bodies of ``media_types`` (None: any)."""

    class ContentTypeRoute(APIRoute):
        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            match, child = super().matches(scope)
            wrong = media_types is not None and _content_type(scope) not in media_types
            if match is Match.FULL and wrong:
                return Match.NONE, {}
            return match, child

    return ContentTypeRoute


async def refuse_media_type() -> None:
    raise UnsupportedMediaTypeError(
        'send multipart/form-data with an \'image\' file, JSON {"image": "<base64>"}, '
        "or a raw image/png or image/jpeg body"
    )


def add_image_posts(
    router: APIRouter, endpoints: Sequence[Callable[..., Any]], **options: Any
) -> list[APIRoute]:
    """POST on the router's prefix, one operation per kind of body: ``endpoints`` take a form,
    a JSON body, a PNG and a JPEG, in ``MEDIA_TYPES``' order; a 415 for any other. Returns the
    documented operations."""
    added: list[APIRoute] = []
    for kind, endpoint in zip(MEDIA_TYPES, endpoints, strict=True):
        router.add_api_route(
            "",
            endpoint,
            methods=["POST"],
            route_class_override=_accepting(MEDIA_TYPES[kind]),
            **options,
        )
        route = router.routes[-1]
        assert isinstance(route, APIRoute)
        added.append(route)
    router.add_api_route(
        "",
        refuse_media_type,
        methods=["POST"],
        include_in_schema=False,
        route_class_override=_accepting(None),
    )
    return added
