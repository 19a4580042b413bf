"""``/api/numbers``: read a whole written number and store it with its digits, correct it,
browse, and fetch the stored drawing. ``POST`` takes the bodies ``/api/predictions`` takes
(digits.api.bodies), and optionally the pen's strokes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from pydantic import ValidationError
from sqlalchemy.orm import Session

from digits import decode, preprocess
from digits.api.bodies import PNG_ANSWER, SubmissionQuery, add_image_posts, errors, png_answer
from digits.api.deps import MemoryDep, NumberStoreDep, PredictorDep, SettingsDep
from digits.api.images import decode_base64_image
from digits.api.large_images import LargeImages, image_size
from digits.api.memory import SessionMemory
from digits.api.number_store import NumberStore
from digits.api.sessions import CallerDep, PredictionSession, PredictionSessionDep
from digits.api.store import new_prediction_row
from digits.config import Settings
from digits.db import numbers as number_rows
from digits.db.models import NumberRow, utcnow
from digits.errors import NumberNotFoundError, StrokesError
from digits.predict import Prediction, Predictor
from digits.read.numbers import NumberReader, NumberReading, parse_strokes
from digits.schemas import (
    NumberCorrectionIn,
    NumberCreated,
    NumberFilter,
    NumberJsonIn,
    NumberLabelIn,
    NumberOut,
    NumberPage,
    NumberRecord,
    NumberSubmission,
    Strokes,
    Submission,
    strokes_from_json,
)

router = APIRouter(prefix="/api/numbers", tags=["numbers"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return errors(*statuses, what="number")


def _row(
    reading: NumberReading,
    submission: Submission,
    *,
    session_id: uuid.UUID,
    image_png: bytes,
    strokes: list[np.ndarray] | None,
    scale: float,
    latency_ms: float,
) -> NumberRow:
    """The number and its digits as rows; boxes and strokes in the submitted image's pixels."""
    row = NumberRow(
        id=uuid.uuid4(),
        created_at=utcnow(),
        number=reading.number,
        confidence=reading.confidence,
        status=reading.status,
        source=submission.source,
        drawing_id=submission.drawing_id,
        session_id=session_id,
        model_version=reading.digits[0].prediction.model_version,
        image_png=image_png,
        strokes=[(s * scale).tolist() for s in strokes] if strokes else None,
        true_number=None,
        not_a_number=False,
        labelled_at=None,
        latency_ms=latency_ms,
    )
    digits_only = Submission(source=submission.source)  # a digit is never replaced alone
    for position, read in enumerate(reading.digits):
        prediction = replace(
            read.prediction,
            input_png=preprocess.input_to_png(read.prediction.model_input),
            latency_ms=latency_ms,
        )
        digit = new_prediction_row(prediction, digits_only, session_id)
        digit.number_id, digit.position = row.id, position
        digit.box = [round(v * scale) for v in read.box]
        row.digits.append(digit)
    return row


@dataclass
class Numbers:
    """The one road from image bytes to the 201: read, then store."""

    predictor: Predictor  # read once: a model swap cannot change it halfway
    settings: Settings
    store: NumberStore
    memory: SessionMemory
    session: PredictionSession
    large_images: LargeImages
    response: Response

    async def create(
        self, data: bytes, submission: Submission, strokes: Strokes | None
    ) -> NumberCreated:
        # On the event loop, as a single digit is (digits.api.routes.predictions says why).
        parsed = parse_strokes(strokes) if strokes is not None else None
        pixels, stored = await self.large_images.prepare(data)
        started = time.perf_counter()
        scale = 1.0
        if isinstance(pixels, np.ndarray):  # shrunk: boxes and strokes scale with it
            size = image_size(data)
            scale = size[0] / pixels.shape[1] if size else 1.0
        reader = NumberReader(self.predictor, max_digits=self.settings.max_number_digits)
        limits = self.settings.input_limits
        reading = reader.read(
            pixels,
            strokes=[s / scale for s in parsed] if parsed else None,
            adapt=self._adapt,  # each digit as the session's memory answers a single one
            max_bytes=limits.max_bytes,
            max_pixels=limits.max_pixels,
        )
        image_png = stored or decode.stored_png(data, max_side=self.settings.stored_image_max_side)
        row = _row(
            reading,
            submission,
            session_id=self.session.session_id,
            image_png=image_png,
            strokes=parsed,
            scale=scale,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        record = self.store.save(row)
        self.response.headers["Location"] = f"/api/numbers/{record.id}"
        answer = record.model_dump(include=set(NumberOut.model_fields))
        return NumberCreated(**answer, session_token=self.session.new_token)

    def _adapt(self, predictions: list[Prediction]) -> list[Prediction]:
        return self.memory.adapt_all(predictions, self.predictor, self.session)


async def get_numbers(
    predictor: PredictorDep,
    settings: SettingsDep,
    store: NumberStoreDep,
    memory: MemoryDep,
    session: PredictionSessionDep,
    request: Request,
    response: Response,
) -> Numbers:
    return Numbers(
        predictor, settings, store, memory, session, request.app.state.large_images, response
    )


NumbersDep = Annotated[Numbers, Depends(get_numbers)]


async def create_from_form(
    image: Annotated[UploadFile, File(description="PNG or JPEG file")],
    form: Annotated[NumberSubmission, Form()],
    _: SubmissionQuery,
    numbers: NumbersDep,
) -> NumberCreated:
    try:
        strokes = None if form.strokes is None else strokes_from_json(form.strokes)
    except ValidationError as exc:
        raise StrokesError("strokes must be JSON: [[[x, y], ...], ...]") from exc
    return await numbers.create(await image.read(), form, strokes)


async def create_from_json(
    body: NumberJsonIn, _: SubmissionQuery, numbers: NumbersDep
) -> NumberCreated:
    return await numbers.create(decode_base64_image(body.image), body, body.strokes)


async def create_from_png(
    data: Annotated[bytes, Body(media_type="image/png")],
    submission: SubmissionQuery,
    numbers: NumbersDep,
) -> NumberCreated:
    return await numbers.create(data, submission, None)


async def create_from_jpeg(
    data: Annotated[bytes, Body(media_type="image/jpeg")],
    submission: SubmissionQuery,
    numbers: NumbersDep,
) -> NumberCreated:
    return await numbers.create(data, submission, None)


POST_BODIES = add_image_posts(
    router,
    [create_from_form, create_from_json, create_from_png, create_from_jpeg],
    status_code=201,
    response_model=NumberCreated,
    response_model_exclude_none=True,  # session_token only for a new session
    responses=_errors(400, 401, 413, 415, 422, 503),
    summary="Read the whole number written in an image and store it with its digits",
)


@router.patch(
    "/{number_id}", response_model=NumberRecord, responses=_errors(400, 401, 404, 413, 503)
)
def correct_number(
    number_id: uuid.UUID,
    correction: Annotated[NumberCorrectionIn, Body()],
    store: NumberStoreDep,
    caller: CallerDep,
    predictor: PredictorDep,
    memory: MemoryDep,
) -> NumberRecord:
    """Record or change the number the user says was written, or that it is no number. One of
    the read number's length labels each digit too, and the number's session remembers those
    digits as it remembers a labelled prediction."""
    true_number = correction.true_number if isinstance(correction, NumberLabelIn) else None

    def learn(session: Session, number: NumberRow) -> None:
        memory.learn_all(session, list(number.digits), predictor)

    return store.label(number_id, true_number, owner=caller.session_id, on_label=learn)


@router.get("", response_model=NumberPage, responses=_errors(401, 503))
def list_numbers(
    store: NumberStoreDep, caller: CallerDep, query: Annotated[NumberFilter, Query()]
) -> NumberPage:
    """The caller's stored numbers (the admin's: everyone's), newest first."""
    with store.database.read() as session:
        rows, total = number_rows.list_numbers(session, query=query, owner=caller.session_id)
        items = [NumberRecord.model_validate(row, from_attributes=True) for row in rows]
    return NumberPage(items=items, total=total)


@router.get("/{number_id}", response_model=NumberRecord, responses=_errors(401, 404, 503))
def get_number(number_id: uuid.UUID, store: NumberStoreDep, caller: CallerDep) -> NumberRecord:
    return store.get(number_id, owner=caller.session_id)


@router.get(
    "/{number_id}/image",
    response_class=Response,
    responses=PNG_ANSWER | _errors(401, 404, 503),
)
def get_image(number_id: uuid.UUID, store: NumberStoreDep, caller: CallerDep) -> Response:
    """The submitted drawing as stored (PNG, at most DIGITS_STORED_IMAGE_MAX_SIDE per side:
    the boxes are in the submitted image's pixels); 404 also once retention dropped it."""
    with store.database.read() as session:
        try:
            data = number_rows.get_png(session, number_id=number_id, owner=caller.session_id)
        except LookupError:
            data, missing = None, True
        else:
            missing = False
    if missing:
        store.get(number_id, owner=caller.session_id)  # 503 for a spooled number, else 404
        raise NumberNotFoundError(number_id)
    return png_answer(data)
