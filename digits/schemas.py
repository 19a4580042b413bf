"""Wire contracts of the prediction API, shared by the server and the UI client.

Times are UTC, ISO 8601 with an explicit ``+00:00`` offset and microseconds, so SQLite and
PostgreSQL rows serialise identically.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    field_validator,
)

Source = Literal["canvas", "upload", "api"]
Status = Literal["ok", "uncertain", "not_a_digit"]
NumberStatus = Literal["ok", "uncertain", "not_a_number"]
Outcome = Literal["correct", "wrong", "unlabelled", "labelled"]
Health = Literal["ok", "degraded", "unavailable"]
Origin = Literal["shipped", "retrain", "manual"]
Action = Literal["initial", "promote", "rollback"]
MAX_PAGE = 500
MAX_OFFSET = 1_000_000
NUM_DIGITS = 10  # the classes a prediction's probabilities cover; the model adds not-a-digit
NOT_A_DIGIT = NUM_DIGITS  # the model's extra class: letters, shapes, scribbles, several digits
Label = Annotated[int, Field(ge=0, le=NUM_DIGITS - 1)]
JobState = Literal["queued", "running", "done", "failed"]
JobOrigin = Literal["admin", "auto"]
SESSION_ID_REFUSED = "session_id is not accepted: the session is the X-Session-Token header"


def iso_utc(value: datetime) -> str:
    """``2026-01-02T03:04:05.000006+00:00`` for any aware (or naive-UTC) datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


UtcDatetime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]


def _iso_8601(value: Any) -> Any:
    # Pydantic alone would also read a number as a Unix time; a history bound is a date.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ].+", value):
        raise ValueError("expected an ISO 8601 date and time, e.g. 2026-01-01T00:00:00+00:00")
    return value


# ISO 8601 with a UTC offset, e.g. ``2026-01-01T00:00:00+00:00``.
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]
# Stored NULL when the answer was not adapted.
Like = Annotated[list[uuid.UUID], BeforeValidator(lambda value: [] if value is None else value)]


class Submission(BaseModel):
    """Where an image submitted to ``POST /api/predictions`` comes from: form fields, JSON
    fields, or query parameters beside a raw image body."""

    source: Source = "api"
    drawing_id: uuid.UUID | None = Field(
        None, description="a later POST of the same drawing replaces its unlabelled prediction"
    )
    # Declared only to be refused: sessions are issued by the server (the X-Session-Token
    # header), and a client-chosen id could claim another's rows.
    session_id: Any = Field(None, description="not accepted: send the X-Session-Token header")

    @field_validator("session_id", mode="before")
    @classmethod
    def _refuse_session_id(cls, value: Any) -> Any:
        raise ValueError(SESSION_ID_REFUSED)


class PredictionJsonIn(Submission):
    """JSON body of ``POST /api/predictions``."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="PNG or JPEG as base64, or a data: URL")


# ``[[[x, y], ...], ...]`` in the drawing's pixels: each stroke as the pen went. Their limits
# (digits.read.numbers.parse_strokes) are checked with the drawing: past them, a 422.
Strokes = list[list[tuple[float, float]]]
_STROKES_HELP = (
    "the pen's strokes, [[[x, y], ...], ...] in the drawing's pixels (at most 64 strokes and "
    "4,096 points): they help tell touching digits apart"
)


class NumberSubmission(Submission):
    """Form fields of ``POST /api/numbers``: a submission, and the strokes as JSON text."""

    # Text, parsed by strokes_from_json: FastAPI would read a list-typed form field as the
    # list of its repeated values.
    strokes: str | None = Field(None, description=f"JSON text: {_STROKES_HELP}")


_STROKES_JSON = TypeAdapter(Strokes)


def strokes_from_json(text: str) -> Strokes:
    """A form's strokes field -> the strokes; ValueError (pydantic's) when it is not
    ``[[[x, y], ...], ...]``."""
    return _STROKES_JSON.validate_json(text)


class NumberJsonIn(PredictionJsonIn):
    """JSON body of ``POST /api/numbers``."""

    strokes: Strokes | None = Field(None, description=_STROKES_HELP)


def _json_integer(value: Any) -> Any:
    # A JSON number, as JSON Schema's "integer" reads it (3 or 3.0); never "3" or true.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a JSON integer")
    return value


class DigitLabelIn(BaseModel):
    """The digit that was drawn (a JSON integer 0-9)."""

    model_config = ConfigDict(extra="forbid")

    true_label: Annotated[Label, BeforeValidator(_json_integer)]


class NotADigitIn(BaseModel):
    """The drawing is no digit at all."""

    model_config = ConfigDict(extra="forbid")

    not_a_digit: Literal[True]


# The body of ``PATCH /api/predictions/{id}``: exactly one of the two.
CorrectionIn = DigitLabelIn | NotADigitIn


def correction(true_label: int | None) -> CorrectionIn:
    """The body that says ``true_label`` was drawn, or for None that it is not a digit."""
    return (
        NotADigitIn(not_a_digit=True) if true_label is None else DigitLabelIn(true_label=true_label)
    )


class NumberLabelIn(BaseModel):
    """The number that was written: a true number of the read number's length labels each of
    its digits too."""

    model_config = ConfigDict(extra="forbid")

    true_number: str = Field(pattern=r"^[0-9]{1,12}$")


class NotANumberIn(BaseModel):
    """The drawing is no number at all."""

    model_config = ConfigDict(extra="forbid")

    not_a_number: Literal[True]


# The body of ``PATCH /api/numbers/{id}``: exactly one of the two.
NumberCorrectionIn = NumberLabelIn | NotANumberIn


def number_correction(true_number: str | None) -> NumberCorrectionIn:
    """The body that says ``true_number`` was written, or for None that it is no number."""
    if true_number is None:
        return NotANumberIn(not_a_number=True)
    return NumberLabelIn(true_number=true_number)


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer: a message, or for invalid fields one entry per field (the input
    itself is never echoed back)."""

    detail: str | list[FieldError]


class DigitAnswer(BaseModel):
    """The model's answer for one digit, as stored in its prediction row."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    digit: Label
    confidence: float
    probabilities: list[float] = Field(min_length=NUM_DIGITS, max_length=NUM_DIGITS)
    status: Status


class AdaptedAnswer(DigitAnswer):
    """A digit's answer, and whether the session's memory made it."""

    adapted: bool = Field(
        False, description="the session's memory of its labelled drawings changed the answer"
    )
    like: Like = Field(
        default_factory=list,
        description="ids of at most 3 of the session's earlier predictions that decided an "
        "adapted answer; [] when not adapted",
        max_length=3,
    )


class PredictionOut(AdaptedAnswer):
    """What ``POST /api/predictions`` answers (201)."""

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


class SessionSummary(BaseModel):
    """``GET /api/sessions/me``: what the caller's session sent, and what its memory holds."""

    session_id: uuid.UUID = Field(description="the session (for DELETE /api/sessions/{id})")
    drawings: int = Field(description="predictions the session made")
    labelled: int = Field(description='of them labelled: a digit, or "not a digit"')
    learned_from: int = Field(
        description="labelled drawings the session's memory uses for the model served now "
        "(at most DIGITS_SESSION_MEMORY_SIZE; 0 with DIGITS_SESSION_MEMORY=false)"
    )


class PredictionRecord(PredictionOut):
    """A stored prediction: the POST fields plus provenance and the user's correction."""

    source: Source
    drawing_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    true_label: Label | None = None
    not_a_digit: bool = Field(False, description="the user said it is not a digit")
    labelled_at: UtcDatetime | None = None


class NumberDigitOut(AdaptedAnswer):
    """One digit of a number: its prediction row (``id``) and where it is in the drawing."""

    box: list[int] = Field(
        min_length=4, max_length=4, description="[x0, y0, x1, y1] in the drawing's pixels"
    )


class NumberOut(BaseModel):
    """What ``POST /api/numbers`` answers (201)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str = Field(description="every digit's best guess, left to right")
    confidence: float = Field(description="the calibrated probability that the whole is right")
    status: NumberStatus
    digits: list[NumberDigitOut]
    model_version: str
    created_at: UtcDatetime


class NumberCreated(NumberOut):
    """The 201 of ``POST /api/numbers``; ``session_token`` as for ``POST /api/predictions``."""

    session_token: str | None = Field(
        None, description="the new session's X-Session-Token (only when none was sent)"
    )


class NumberRecord(NumberOut):
    """A stored number: the POST fields plus provenance and the user's correction."""

    source: Source
    drawing_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    true_number: str | None = None
    not_a_number: bool = Field(False, description="the user said it is no number")
    labelled_at: UtcDatetime | None = None


class NumberFilter(BaseModel):
    """Which stored numbers ``GET /api/numbers`` lists, and which page of them."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    status: NumberStatus | None = Field(None, description="the reader's answer")
    outcome: Outcome | None = Field(
        None, description='"labelled" includes a "not a number" label, "unlabelled" excludes it'
    )
    since: IsoDatetime | None = Field(None, description="created at or after")
    until: IsoDatetime | None = Field(None, description="created before")


class NumberPage(BaseModel):
    items: list[NumberRecord]
    total: int


class HistoryFilter(BaseModel):
    """Which stored predictions ``GET /api/predictions`` lists (its query parameters), and
    which page of them."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    digit: Label | None = Field(None, description="predicted digit")
    true_label: Label | None = Field(None, description="the user's digit label")
    outcome: Outcome | None = Field(
        None, description='"labelled" includes a "not a digit" label, "unlabelled" excludes it'
    )
    status: Status | None = Field(None, description="the model's answer")
    not_a_digit: bool | None = Field(
        None, description='the user labelled it "not a digit" (true) or did not (false)'
    )
    since: IsoDatetime | None = Field(None, description="created at or after")
    until: IsoDatetime | None = Field(None, description="created before")
    session_id: uuid.UUID | None = Field(None, description="the client's session")


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
    adapted: int = Field(description="answers a session's memory changed")
    adapted_confirmed: int = Field(
        description="adapted answers the person then labelled as answered (the digit, or "
        '"not a digit" for a not_a_digit answer)'
    )
    not_a_digit: int = Field(description="predictions answered not_a_digit")
    not_a_digit_labels: int = Field(description='drawings the user labelled "not a digit"')
    per_digit_accuracy: dict[str, float | None] = Field(
        description="accuracy among corrections whose true label is the key"
    )
    per_model_version: list[VersionAccuracy]
    confusion_matrix: list[list[int]] = Field(description="rows: true label, columns: predicted")
    reliability: list[ReliabilityBin]
    numbers: int = Field(0, description="numbers read")
    numbers_labelled: int = Field(0, description="numbers the user gave the true number of")
    numbers_correct: int = Field(0, description="of those, read right whole")
    number_accuracy: float | None = Field(
        None, description="whole-number accuracy: numbers_correct / numbers_labelled"
    )


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


class RetrainJobId(BaseModel):
    job_id: uuid.UUID


class RetrainJob(BaseModel):
    """A retraining run by `digits trainer` (``GET /api/admin/retrain/{job_id}``)."""

    # The row's id; the wire's job_id (what the UI client reads back).
    job_id: uuid.UUID = Field(validation_alias=AliasChoices("id", "job_id"))
    origin: JobOrigin = Field(description="admin: asked for; auto: DIGITS_RETRAIN_AFTER")
    state: JobState
    progress: float = Field(ge=0, le=1)
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    report: dict[str, Any] | None = Field(description="what `digits retrain` prints, once done")
    error: str | None = Field(description="why it failed")


class RetrainJobs(BaseModel):
    """The most recent retraining jobs, newest first (``GET /api/admin/retrain``)."""

    jobs: list[RetrainJob]


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
