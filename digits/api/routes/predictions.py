"""``/api/predictions``: predict and store, correct, browse, and fetch the stored images."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from digits import autoretrain
from digits.api.deps import StoreDep
from digits.api.images import decode_base64_image
from digits.api.store import PredictionNotFoundError, PredictionStore
from digits.config import Settings
from digits.db import queries
from digits.predict import Predictor
from digits.schemas import (
    CorrectionIn,
    HistoryFilter,
    PredictionJsonIn,
    PredictionOut,
    PredictionPage,
    PredictionRecord,
    Submission,
)

_In = TypeVar("_In", bound=BaseModel)

router = APIRouter(prefix="/api/predictions", tags=["predictions"])

_ANSWER_FIELDS = set(PredictionOut.model_fields)
MAX_FORM_FIELDS = 8

_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "Body or image over the configured limit"},
    415: {"description": "Not a PNG or JPEG, or an unsupported content type"},
    422: {"description": "Empty drawing, or invalid fields"},
}


def _validated(model: type[_In], fields: Any) -> _In:
    """``fields`` (a dict, or JSON text) as ``model``; a 422 naming the bad fields otherwise."""
    try:
        if isinstance(fields, bytes):
            return model.model_validate_json(fields)
        # An empty form field or query parameter means "not given".
        return model.model_validate({k: v for k, v in fields.items() if v not in ("", None)})
    except ValidationError as exc:
        # No input echoed back: it may be binary junk, and it is the client's own anyway.
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise HTTPException(422, jsonable_encoder(errors)) from exc


class _FormIn(Submission):
    image: bytes = Field(description="PNG or JPEG file")


_IMAGE_BODY = TypeAdapter(bytes).json_schema()
# One route takes four content types, so FastAPI cannot infer the body from the signature;
# every schema here is generated from the pydantic models the route validates with.
_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": _FormIn.model_json_schema()},
        "application/json": {"schema": PredictionJsonIn.model_json_schema()},
        "image/png": {"schema": _IMAGE_BODY},
        "image/jpeg": {"schema": _IMAGE_BODY},
    },
}


async def _read_submission(request: Request) -> tuple[bytes, Submission]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in {"multipart/form-data", "application/x-www-form-urlencoded"}:
        async with request.form(max_files=1, max_fields=MAX_FORM_FIELDS) as form:
            fields: dict[str, Any] = {
                name: form.get(name) for name in ("source", "drawing_id", "session_id")
            }
            upload = form.get("image")
            if isinstance(upload, UploadFile):
                fields["image"] = await upload.read()
            elif upload is not None:
                fields["image"] = decode_base64_image(upload)
        submitted = _validated(_FormIn, fields)
        return submitted.image, submitted
    if content_type == "application/json" or content_type.endswith("+json"):
        payload = _validated(PredictionJsonIn, await request.body())
        return decode_base64_image(payload.image), payload
    if content_type in {"image/png", "image/jpeg"}:
        submitted = _validated(_FormIn, {**request.query_params, "image": await request.body()})
        return submitted.image, submitted
    raise HTTPException(
        415,
        'send multipart/form-data with an \'image\' file, JSON {"image": "<base64>"}, '
        "or a raw image/png or image/jpeg body",
    )


@router.post(
    "",
    status_code=201,
    response_model=PredictionOut,
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses=_ERRORS,
    summary="Predict the digit in an image and store the prediction",
)
async def create_prediction(request: Request) -> Response:
    # The hot path reads app.state directly and serialises the answer itself: FastAPI's
    # dependency solving and response validation would add CPU to every request.
    state = request.app.state
    data, submission = await _read_submission(request)
    settings: Settings = state.settings
    # Model and insert run here, on the event loop, one request at a time per worker as in a
    # sync worker. Handing them to a thread cost a worker more CPU than the work itself under
    # load (GIL hand-offs, thread wake-ups); docs/api.md has the figures. Concurrency comes
    # from the workers.
    predictor: Predictor = state.holder.predictor  # once: a swap cannot change it halfway
    prediction = predictor.predict_drawing(
        data, limits=settings.input_limits, stored_max_side=settings.stored_image_max_side
    )
    record = state.store.save_prediction(prediction, submission)
    return Response(
        record.model_dump_json(include=_ANSWER_FIELDS),
        status_code=201,
        media_type="application/json",
        headers={"Location": f"/api/predictions/{record.id}"},
    )


@router.patch("/{prediction_id}", response_model=PredictionRecord)
def correct_prediction(
    prediction_id: uuid.UUID,
    correction: CorrectionIn,
    store: StoreDep,
    request: Request,
    background: BackgroundTasks,
) -> PredictionRecord:
    """Record or change the digit the user says was drawn, or that it is not a digit."""
    record = store.label(prediction_id, correction.true_label)
    after = request.app.state.settings.retrain_after
    if after:  # DIGITS_RETRAIN_AFTER: maybe start a retraining, once the answer has gone
        background.add_task(autoretrain.start_if_due, store.database, after)
    return record


@router.get("", response_model=PredictionPage)
def list_predictions(store: StoreDep, query: Annotated[HistoryFilter, Query()]) -> PredictionPage:
    """Stored predictions, newest first."""
    with store.database.read() as session:
        rows, total = queries.list_predictions(session, query=query)
        items = [PredictionRecord.model_validate(row, from_attributes=True) for row in rows]
    return PredictionPage(items=items, total=total)


@router.get("/{prediction_id}", response_model=PredictionRecord)
def get_prediction(prediction_id: uuid.UUID, store: StoreDep) -> PredictionRecord:
    return store.get(prediction_id)


def _png(store: PredictionStore, prediction_id: uuid.UUID, kind: queries.ImageKind) -> Response:
    with store.database.read() as session:
        try:
            data = queries.get_png(session, prediction_id=prediction_id, kind=kind)
        except LookupError:
            data = None
            missing = True
        else:
            missing = False
    if missing:
        store.get(prediction_id)  # answers 503 for a spooled prediction, else 404
        raise PredictionNotFoundError(prediction_id)
    if data is None:
        raise HTTPException(404, "the stored drawing was removed by the retention policy")
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.get(
    "/{prediction_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "Unknown or purged"}},
)
def get_image(prediction_id: uuid.UUID, store: StoreDep) -> Response:
    """The submitted drawing as stored (PNG, at most DIGITS_STORED_IMAGE_MAX_SIDE per side)."""
    return _png(store, prediction_id, "image")


@router.get(
    "/{prediction_id}/input",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "Unknown id"}},
)
def get_input(prediction_id: uuid.UUID, store: StoreDep) -> Response:
    """The 28x28 image the model read (PNG, white ink on black)."""
    return _png(store, prediction_id, "input")
