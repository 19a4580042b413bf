"""``/api/predictions``: predict and store, correct, browse, and fetch the stored images."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from digits.api.deps import StoreDep
from digits.api.images import decode_base64_image, stored_png
from digits.api.metrics import Metrics
from digits.api.records import record_from_row
from digits.api.sessions import CallerDep, TokenHeader, session_for_prediction
from digits.api.store import PredictionNotFoundError, PredictionStore
from digits.config import Settings
from digits.db import crud, queries
from digits.db.models import utcnow
from digits.loop import autoretrain
from digits.predict import Predictor
from digits.preprocess import input_to_png
from digits.schemas import (
    CorrectionIn,
    Label,
    Outcome,
    PredictionCreated,
    PredictionFormIn,
    PredictionJsonIn,
    PredictionOut,
    PredictionPage,
    PredictionRecord,
    Status,
)

_In = TypeVar("_In", bound=BaseModel)

router = APIRouter(prefix="/api/predictions", tags=["predictions"])

_ANSWER_FIELDS = set(PredictionOut.model_fields)
MAX_PAGE = 500
MAX_OFFSET = 1_000_000
MAX_FORM_FIELDS = 8

_IMAGE_BODY = TypeAdapter(bytes).json_schema()
# One route takes four content types, so FastAPI cannot infer the body from the signature;
# every schema here is generated from the pydantic models the route validates with.
_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": PredictionFormIn.model_json_schema()},
        "application/json": {"schema": PredictionJsonIn.model_json_schema()},
        "image/png": {"schema": _IMAGE_BODY},
        "image/jpeg": {"schema": _IMAGE_BODY},
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unknown, expired or deleted X-Session-Token"},
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


async def _read_submission(request: Request) -> tuple[bytes, str, uuid.UUID | None]:
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
        submitted = _validated(PredictionFormIn, fields)
        return submitted.image, submitted.source, submitted.drawing_id
    if content_type == "application/json" or content_type.endswith("+json"):
        payload = _validated(PredictionJsonIn, await request.body())
        image = decode_base64_image(payload.image)
        return image, payload.source, payload.drawing_id
    if content_type in {"image/png", "image/jpeg"}:
        submitted = _validated(
            PredictionFormIn, {**request.query_params, "image": await request.body()}
        )
        return submitted.image, submitted.source, submitted.drawing_id
    raise HTTPException(
        415,
        'send multipart/form-data with an \'image\' file, JSON {"image": "<base64>"}, '
        "or a raw image/png or image/jpeg body",
    )


def _predict_and_save(
    *,
    data: bytes | np.ndarray,
    stored: bytes | None,
    source: str,
    drawing_id: uuid.UUID | None,
    session_id: uuid.UUID,
    predictor: Predictor,
    settings: Settings,
    store: PredictionStore,
    metrics: Metrics,
) -> PredictionRecord:
    """Predict, then store durably (database or spool). ``stored``: the stored copy when it
    was made already (with ``data`` shrunk off the event loop), else made from ``data``."""
    started = time.perf_counter()
    prediction = predictor.predict(
        data, max_bytes=settings.max_body_bytes, max_pixels=settings.max_pixels
    )
    new = crud.NewPrediction(
        id=uuid.uuid4(),
        created_at=utcnow(),
        digit=prediction.digit,
        confidence=prediction.confidence,
        probabilities=prediction.probabilities,
        status=prediction.status,
        source=source,
        drawing_id=drawing_id,
        model_version=predictor.version,
        image_png=(
            stored
            if isinstance(data, np.ndarray)
            else stored_png(data, max_side=settings.stored_image_max_side)
        ),
        input_png=input_to_png(prediction.model_input),
        latency_ms=(time.perf_counter() - started) * 1000,
        session_id=session_id,
    )
    record = store.save_prediction(new)
    metrics.predictions.labels(digit=str(record.digit), status=record.status).inc()
    return record


@router.post(
    "",
    status_code=201,
    response_model=PredictionCreated,
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses=_ERRORS,
    summary="Predict the digit in an image and store the prediction",
)
async def create_prediction(request: Request, x_session_token: TokenHeader = None) -> Response:
    # The hot path reads app.state directly and serialises the answer itself: FastAPI's
    # dependency solving and response validation would add CPU to every request.
    state = request.app.state
    session_id, new_token = session_for_prediction(request)
    submitted, source, drawing_id = await _read_submission(request)
    data, stored = await state.large_images.prepare(submitted)
    # Model and insert run here, on the event loop, one request at a time per worker as in a
    # sync worker. Handing them to a thread cost a worker more CPU than the work itself under
    # load (GIL hand-offs, thread wake-ups); docs/api.md has the figures. Concurrency comes
    # from the workers.
    record = _predict_and_save(
        data=data,
        stored=stored,
        source=source,
        drawing_id=drawing_id,
        session_id=session_id,
        predictor=state.holder.predictor,  # once: a model swap cannot change it halfway
        settings=state.settings,
        store=state.store,
        metrics=state.metrics,
    )
    body = record.model_dump_json(include=_ANSWER_FIELDS)
    if new_token is not None:
        answer = record.model_dump(include=_ANSWER_FIELDS)
        body = PredictionCreated(**answer, session_token=new_token).model_dump_json()
    return Response(
        body,
        status_code=201,
        media_type="application/json",
        headers={"Location": f"/api/predictions/{record.id}"},
    )


@router.patch("/{prediction_id}", response_model=PredictionRecord)
def correct_prediction(
    prediction_id: uuid.UUID,
    correction: CorrectionIn,
    store: StoreDep,
    caller: CallerDep,
    request: Request,
    background: BackgroundTasks,
) -> PredictionRecord:
    """Record or change the digit the user says was drawn, or that it is not a digit."""
    record = store.label(prediction_id, correction.true_label, owner=caller.session_id)
    after = request.app.state.settings.retrain_after
    if after:  # DIGITS_RETRAIN_AFTER: maybe start a retraining, once the answer has gone
        background.add_task(autoretrain.start_if_due, store.database, after)
    return record


@router.get("", response_model=PredictionPage)
def list_predictions(
    store: StoreDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    digit: Annotated[Label | None, Query(description="predicted digit")] = None,
    true_label: Annotated[Label | None, Query(description="the user's correction")] = None,
    outcome: Annotated[Outcome | None, Query()] = None,
    status: Annotated[Status | None, Query(description="the model's answer")] = None,
    not_a_digit: Annotated[
        bool | None, Query(description='the user labelled it "not a digit" (or not)')
    ] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    session_id: Annotated[uuid.UUID | None, Query(description="the client's session")] = None,
) -> PredictionPage:
    """The caller's stored predictions (the admin's: everyone's), newest first."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a UTC offset, e.g. 2026-01-01T00:00:00+00:00")
    with store.database.read() as session:
        rows, total = queries.list_predictions(
            session,
            limit=limit,
            offset=offset,
            digit=digit,
            true_label=true_label,
            outcome=outcome,
            status=status,
            not_a_digit=not_a_digit,
            since=since,
            until=until,
            session_id=session_id,
            owner=caller.session_id,
        )
        items = [record_from_row(row) for row in rows]
    return PredictionPage(items=items, total=total)


@router.get("/{prediction_id}", response_model=PredictionRecord)
def get_prediction(
    prediction_id: uuid.UUID, store: StoreDep, caller: CallerDep
) -> PredictionRecord:
    return store.get(prediction_id, owner=caller.session_id)


def _png(
    store: PredictionStore,
    prediction_id: uuid.UUID,
    kind: queries.ImageKind,
    owner: uuid.UUID | None,
) -> Response:
    with store.database.read() as session:
        try:
            data = queries.get_png(session, prediction_id=prediction_id, kind=kind, owner=owner)
        except LookupError:
            data = None
            missing = True
        else:
            missing = False
    if missing:
        store.get(prediction_id, owner=owner)  # answers 503 for a spooled prediction, else 404
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
def get_image(prediction_id: uuid.UUID, store: StoreDep, caller: CallerDep) -> Response:
    """The submitted drawing as stored (PNG, at most DIGITS_STORED_IMAGE_MAX_SIDE per side)."""
    return _png(store, prediction_id, "image", caller.session_id)


@router.get(
    "/{prediction_id}/input",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "Unknown id"}},
)
def get_input(prediction_id: uuid.UUID, store: StoreDep, caller: CallerDep) -> Response:
    """The 28x28 image the model read (PNG, white ink on black)."""
    return _png(store, prediction_id, "input", caller.session_id)
