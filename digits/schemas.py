"""Wire contracts of the prediction API, shared by the server and the UI client.

Times are UTC, ISO 8601 with an explicit ``+00:00`` offset and microseconds, so SQLite and
PostgreSQL rows serialise identically.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

Source = Literal["canvas", "upload", "api"]
Status = Literal["ok", "uncertain", "not_a_digit"]
Outcome = Literal["correct", "wrong", "unlabelled", "labelled"]
Health = Literal["ok", "degraded", "unavailable"]
Origin = Literal["shipped", "retrain", "manual"]
Action = Literal["initial", "promote", "rollback"]
Label = Annotated[int, Field(ge=0, le=9)]
# A label in a JSON body: an integer, never true/false, 1.0 or "1".
StrictLabel = Annotated[int, Field(ge=0, le=9, strict=True)]
SESSION_ID_REFUSED = "session_id is not accepted: the session is the X-Session-Token header"

NUM_CLASSES = 10


def iso_utc(value: datetime) -> str:
    """``2026-01-02T03:04:05.000006+00:00`` for any aware (or naive-UTC) datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


UtcDatetime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]


def _refuse_session_id(data: Any) -> Any:
    # Sessions are issued by the server; a client-chosen id could claim another's rows.
    if isinstance(data, dict) and "session_id" in data:
        raise ValueError(SESSION_ID_REFUSED)
    return data


class PredictionJsonIn(BaseModel):
    """JSON body of ``POST /api/predictions`` (the multipart form carries the same fields)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="PNG or JPEG as base64, or a data: URL")
    source: Source = "api"
    drawing_id: uuid.UUID | None = None

    _no_session_id = model_validator(mode="before")(_refuse_session_id)


class PredictionFormIn(BaseModel):
    """Multipart form of ``POST /api/predictions``: the image as a file (or a base64 field)."""

    image: bytes = Field(description="PNG or JPEG file")
    source: Source = "api"
    drawing_id: uuid.UUID | None = None

    _no_session_id = model_validator(mode="before")(_refuse_session_id)


class CorrectionIn(BaseModel):
    """The digit that was drawn, or ``{"not_a_digit": true}``: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    true_label: StrictLabel | None = None
    not_a_digit: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_answer(self) -> CorrectionIn:
        if (self.true_label is None) == (self.not_a_digit is None):
            raise ValueError('give either "true_label" (0-9) or "not_a_digit": true')
        return self


class PredictionOut(BaseModel):
    """What ``POST /api/predictions`` answers (201)."""

    id: uuid.UUID
    digit: Label
    confidence: float
    probabilities: list[float] = Field(min_length=NUM_CLASSES, max_length=NUM_CLASSES)
    status: Status
    model_version: str
    created_at: UtcDatetime


class PredictionCreated(PredictionOut):
    """The 201 of ``POST /api/predictions``; a request without ``X-Session-Token`` made a new
    session, whose token comes back here."""

    session_token: str | None = Field(
        None, description="the new session's X-Session-Token (only when none was sent)"
    )


class SessionOut(BaseModel):
    """A new session (``POST /api/sessions``): send the token as ``X-Session-Token``."""

    session_id: uuid.UUID
    session_token: str


class PredictionRecord(PredictionOut):
    """A stored prediction: the POST fields plus provenance and the user's correction."""

    source: Source
    drawing_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    true_label: Label | None = None
    not_a_digit: bool = Field(False, description="the user said it is not a digit")
    labelled_at: UtcDatetime | None = None


class PredictionPage(BaseModel):
    items: list[PredictionRecord]
    total: int


class VersionAccuracy(BaseModel):
    model_version: str
    labelled: int
    accuracy: float | None


class ReliabilityBin(BaseModel):
    """Labelled predictions whose confidence fell in [lower, upper)."""

    lower: float
    upper: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


class Stats(BaseModel):
    total: int
    labelled: int
    correct: int
    accuracy: float | None
    mean_confidence: float | None
    uncertain: int
    not_a_digit: int = Field(description="predictions answered not_a_digit")
    not_a_digit_labels: int = Field(description='drawings the user labelled "not a digit"')
    per_digit_accuracy: dict[str, float | None] = Field(
        description="accuracy among corrections whose true label is the key"
    )
    per_model_version: list[VersionAccuracy]
    confusion_matrix: list[list[int]] = Field(description="rows: true label, columns: predicted")
    reliability: list[ReliabilityBin]


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    version: str
    temperature: float
    uncertain_threshold: float
    metrics: dict[str, Any]
    info: dict[str, Any]


class DependencyCheck(BaseModel):
    status: Health
    detail: str | None = None


class Readiness(BaseModel):
    status: Health
    checks: dict[str, DependencyCheck]
    spool_depth: int


class DeletedCount(BaseModel):
    deleted: int


class PurgedCount(BaseModel):
    purged: int


class RegisteredModel(BaseModel):
    """A model in the registry (``digits models list``)."""

    model_config = ConfigDict(protected_namespaces=())

    version: str
    origin: Origin
    created_at: UtcDatetime
    registered_at: UtcDatetime
    parent: str | None
    metrics: dict[str, Any]
    data: dict[str, Any]
    active: bool


class ActivationEvent(BaseModel):
    """A model became active: the first (shipped) model, a promotion or a rollback."""

    at: UtcDatetime
    action: Action
    version: str
    previous: str | None
    reason: str


class ModelRegistry(BaseModel):
    active: str | None = Field(description="the registry's active version")
    serving: str = Field(description="the version this API process answers with now")
    models: list[RegisteredModel]
    events: list[ActivationEvent]
    card: str | None = Field(description="the active model's card or retraining report (Markdown)")


class AccuracyPoint(BaseModel):
    """Corrections of one model version's predictions made in [start, start + bucket)."""

    model_version: str
    start: UtcDatetime
    labelled: int
    correct: int
    accuracy: float


class ModelAccuracy(BaseModel):
    bucket: Literal["hour", "day"]
    points: list[AccuracyPoint]
