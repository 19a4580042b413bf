"""``/api/predictions``: predict and store, correct, browse, and fetch the stored images.

``POST`` takes three kinds of body (digits.api.bodies), chosen by the request's Content-Type.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Depends,
    File,
    Form,
    Query,
    Request,
    Response,
    UploadFile,
)
from sqlalchemy.orm import Session

from digits.api.bodies import PNG_ANSWER, SubmissionQuery, add_image_posts, errors, png_answer
from digits.api.deps import MemoryDep, PredictorDep, SettingsDep, StoreDep
from digits.api.images import decode_base64_image
from digits.api.large_images import LargeImages
from digits.api.memory import SessionMemory
from digits.api.sessions import CallerDep, PredictionSession, PredictionSessionDep
from digits.api.store import PredictionStore
from digits.config import Settings
from digits.db import queries
from digits.db.models import PredictionRow
from digits.errors import PredictionNotFoundError
from digits.loop import jobs
from digits.predict import Predictor
from digits.schemas import (
    CorrectionIn,
    DigitLabelIn,
    HistoryFilter,
    PredictionCreated,
    PredictionJsonIn,
    PredictionOut,
    PredictionPage,
    PredictionRecord,
    Submission,
)

router = APIRouter(prefix="/api/predictions", tags=["predictions"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return errors(*statuses, what="prediction")


@dataclass
class Predictions:
    """The one road from image bytes to the 201: predict, then store."""

    predictor: Predictor  # read once: a model swap cannot change it halfway
    settings: Settings
    store: PredictionStore
    memory: SessionMemory
    session: PredictionSession
    large_images: LargeImages
    response: Response

    async def create(self, data: bytes, submission: Submission) -> PredictionCreated:
        # Model and insert run here, on the event loop, one request at a time per worker as in
        # a sync worker. Handing them to a thread cost a worker more CPU than the work itself
        # under load (GIL hand-offs, thread wake-ups); docs/api.md has the figures.
        # Concurrency comes from the workers. Only a large image is decoded elsewhere.
        pixels, stored = await self.large_images.prepare(data)
        prediction = self.predictor.predict_drawing(
            pixels,
            limits=self.settings.input_limits,
            stored_max_side=self.settings.stored_image_max_side,
            stored=stored,
        )
        prediction = self.memory.adapt(prediction, self.predictor, self.session)
        record = self.store.save_prediction(
            prediction, submission, session_id=self.session.session_id
        )
        self.response.headers["Location"] = f"/api/predictions/{record.id}"
        answer = record.model_dump(include=set(PredictionOut.model_fields))
        return PredictionCreated(**answer, session_token=self.session.new_token)


async def get_predictions(
    predictor: PredictorDep,
    settings: SettingsDep,
    store: StoreDep,
    memory: MemoryDep,
    session: PredictionSessionDep,
    request: Request,
    response: Response,
) -> Predictions:
    # async: FastAPI would build the class itself in a worker thread, a hand-off per request.
    return Predictions(
        predictor, settings, store, memory, session, request.app.state.large_images, response
    )


PredictionsDep = Annotated[Predictions, Depends(get_predictions)]
_POST: dict[str, Any] = {
    "status_code": 201,
    "response_model": PredictionCreated,
    "response_model_exclude_none": True,  # session_token only for a new session
    "responses": _errors(400, 401, 413, 415, 422, 503),
    "summary": "Predict the digit in an image and store the prediction",
}


async def create_from_form(
    image: Annotated[UploadFile, File(description="PNG or JPEG file")],
    form: Annotated[Submission, Form()],
    _: SubmissionQuery,
    predictions: PredictionsDep,
) -> PredictionCreated:
    return await predictions.create(await image.read(), form)


async def create_from_json(
    body: PredictionJsonIn, _: SubmissionQuery, predictions: PredictionsDep
) -> PredictionCreated:
    return await predictions.create(decode_base64_image(body.image), body)


async def create_from_png(
    data: Annotated[bytes, Body(media_type="image/png")],
    submission: SubmissionQuery,
    predictions: PredictionsDep,
) -> PredictionCreated:
    return await predictions.create(data, submission)


async def create_from_jpeg(
    data: Annotated[bytes, Body(media_type="image/jpeg")],
    submission: SubmissionQuery,
    predictions: PredictionsDep,
) -> PredictionCreated:
    return await predictions.create(data, submission)


# FastAPI's OpenAPI document keeps one operation per path and method: digits.api.app merges
# these operations' request bodies into the one POST it documents.
POST_BODIES = add_image_posts(
    router,
    [create_from_form, create_from_json, create_from_png, create_from_jpeg],
    **_POST,
)


@router.patch(
    "/{prediction_id}", response_model=PredictionRecord, responses=_errors(400, 401, 404, 413, 503)
)
def correct_prediction(
    prediction_id: uuid.UUID,
    correction: Annotated[CorrectionIn, Body()],
    store: StoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    predictor: PredictorDep,
    memory: MemoryDep,
    background: BackgroundTasks,
) -> PredictionRecord:
    """Record or change the digit the user says was drawn, or that it is not a digit. The
    prediction's session remembers it: its later, similar drawings are read alike."""
    true_label = correction.true_label if isinstance(correction, DigitLabelIn) else None

    def learn(session: Session, row: PredictionRow) -> None:
        memory.learn(session, row, predictor)

    record = store.label(prediction_id, true_label, owner=caller.session_id, on_label=learn)
    if settings.retrain_after:  # maybe queue a retraining, once the answer has gone
        background.add_task(jobs.enqueue_if_due, store.database, settings.retrain_after)
    return record


@router.get("", response_model=PredictionPage, responses=_errors(401, 503))
def list_predictions(
    store: StoreDep, caller: CallerDep, query: Annotated[HistoryFilter, Query()]
) -> PredictionPage:
    """The caller's stored predictions (the admin's: everyone's), newest first."""
    with store.database.read() as session:
        rows, total = queries.list_predictions(session, query=query, owner=caller.session_id)
        items = [PredictionRecord.model_validate(row, from_attributes=True) for row in rows]
    return PredictionPage(items=items, total=total)


@router.get("/{prediction_id}", response_model=PredictionRecord, responses=_errors(401, 404, 503))
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
    return png_answer(data)


@router.get(
    "/{prediction_id}/image",
    response_class=Response,
    responses=PNG_ANSWER | _errors(401, 404, 503),
)
def get_image(prediction_id: uuid.UUID, store: StoreDep, caller: CallerDep) -> Response:
    """The submitted drawing as stored (PNG, at most DIGITS_STORED_IMAGE_MAX_SIDE per side);
    404 also once the retention policy dropped it."""
    return _png(store, prediction_id, "image", caller.session_id)


@router.get(
    "/{prediction_id}/input", response_class=Response, responses=PNG_ANSWER | _errors(401, 404, 503)
)
def get_input(prediction_id: uuid.UUID, store: StoreDep, caller: CallerDep) -> Response:
    """The 28x28 image the model read (PNG, white ink on black)."""
    return _png(store, prediction_id, "input", caller.session_id)
