"""The UI's only road to data: a typed httpx client for the prediction API (issue 3's contract).

Every failure (service down, too slow, an error status, an answer of the wrong shape) becomes
one `ApiError` whose message tells a person what happened and what to do, so pages can show
it with `st.error(str(err))` and nothing else.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from digits.schemas import (
    HistoryFilter,
    ModelAccuracy,
    ModelRegistry,
    NumberFilter,
    NumberOut,
    NumberPage,
    NumberRecord,
    PredictionOut,
    PredictionPage,
    PredictionRecord,
    RetrainJobId,
    RetrainJobs,
    SessionOut,
    SessionSummary,
    Source,
    Stats,
    correction,
    number_correction,
)

M = TypeVar("M", bound=BaseModel)
ErrorKind = Literal["unreachable", "timeout", "empty", "not_found", "rejected", "server", "invalid"]

__all__ = [
    "ApiClient",
    "ApiError",
    "ErrorKind",
    "HistoryFilter",
    "ModelAccuracy",
    "ModelRegistry",
    "NumberFilter",
    "NumberOut",
    "NumberPage",
    "NumberRecord",
    "PredictionOut",
    "PredictionPage",
    "PredictionRecord",
    "SessionOut",
    "SessionSummary",
    "Source",
    "Stats",
]


class ApiError(Exception):
    """The API could not give an answer; `str(err)` is a message meant for a person."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status_code: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind
        self.status_code = status_code
        self.detail = detail


class ApiClient:
    """Calls the prediction API at `base_url`; one instance can serve many sessions, each
    through its own `with_credentials` view (they share one connection pool)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._auth: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    def with_credentials(
        self, *, session_token: str | None = None, admin_token: str | None = None
    ) -> ApiClient:
        """This client acting as a session (its X-Session-Token) and, with the admin token, as
        the operator, who sees every session's predictions."""
        view = copy.copy(self)
        view._auth = {}
        if session_token:
            view._auth["X-Session-Token"] = session_token
        if admin_token:
            view._auth["Authorization"] = f"Bearer {admin_token}"
        return view

    def create_session(self) -> SessionOut:
        """A new session of the API (one per person and device)."""
        return self._parse(SessionOut, self._send("POST", "/api/sessions"))

    def session_is_valid(self) -> bool:
        """Whether this client's session token is still accepted (not expired or deleted)."""
        try:
            self._send("GET", "/api/predictions", params={"limit": 1})
        except ApiError as err:
            if err.status_code == 401:
                return False
            raise
        return True

    def session_summary(self) -> SessionSummary:
        """This session's drawings, labels, and how many of them its memory learns from."""
        return self._parse(SessionSummary, self._send("GET", "/api/sessions/me"))

    def delete_session(self, session_id: uuid.UUID | str) -> None:
        """Delete the session: its drawings, labels and memory; its token stops working."""
        self._send("DELETE", f"/api/sessions/{session_id}")

    def predict(
        self,
        image: bytes,
        *,
        source: Source = "canvas",
        drawing_id: str | None = None,
        filename: str = "drawing.png",
        content_type: str = "image/png",
    ) -> PredictionOut:
        """POST an image; a blank one raises `ApiError` with kind "empty"."""
        form: dict[str, str] = {"source": source}
        if drawing_id is not None:
            form["drawing_id"] = drawing_id
        files = {"image": (filename, image, content_type)}
        response = self._send("POST", "/api/predictions", data=form, files=files)
        return self._parse(PredictionOut, response)

    def read_number(
        self,
        image: bytes,
        *,
        strokes: list[list[list[float]]] | None = None,
        source: Source = "canvas",
        drawing_id: str | None = None,
    ) -> NumberOut:
        """POST a drawing of a whole number (and the pen's strokes, if known)."""
        form: dict[str, str] = {"source": source}
        if drawing_id is not None:
            form["drawing_id"] = drawing_id
        if strokes:
            form["strokes"] = json.dumps(strokes)
        files = {"image": ("number.png", image, "image/png")}
        response = self._send("POST", "/api/numbers", data=form, files=files)
        return self._parse(NumberOut, response)

    def label_number(self, number_id: uuid.UUID | str, true_number: str | None) -> NumberRecord:
        """Record (or change) the number the user says was written; None: not a number."""
        body = number_correction(true_number).model_dump()
        response = self._send("PATCH", f"/api/numbers/{number_id}", json=body)
        return self._parse(NumberRecord, response)

    def list_numbers(self, query: NumberFilter | None = None) -> NumberPage:
        """A page of stored numbers, newest first, with the filtered total."""
        params = (query or NumberFilter()).model_dump(mode="json", exclude_defaults=True)
        return self._parse(NumberPage, self._send("GET", "/api/numbers", params=params))

    def number_png(self, number_id: uuid.UUID | str) -> bytes:
        """A number's drawing as stored (PNG)."""
        return self._send("GET", f"/api/numbers/{number_id}/image").content

    def label(self, prediction_id: uuid.UUID | str, true_label: int | None) -> PredictionRecord:
        """Record (or change) the digit the user says was drawn; None: not a digit."""
        body = correction(true_label).model_dump()
        response = self._send("PATCH", f"/api/predictions/{prediction_id}", json=body)
        return self._parse(PredictionRecord, response)

    def get_prediction(self, prediction_id: uuid.UUID | str) -> PredictionRecord:
        return self._parse(PredictionRecord, self._send("GET", f"/api/predictions/{prediction_id}"))

    def list_predictions(self, query: HistoryFilter | None = None) -> PredictionPage:
        """A page of stored predictions, newest first, with the filtered total."""
        params = (query or HistoryFilter()).model_dump(mode="json", exclude_defaults=True)
        return self._parse(PredictionPage, self._send("GET", "/api/predictions", params=params))

    def image_png(self, prediction_id: uuid.UUID | str) -> bytes:
        """The drawing or upload as stored (PNG)."""
        return self._send("GET", f"/api/predictions/{prediction_id}/image").content

    def input_png(self, prediction_id: uuid.UUID | str) -> bytes:
        """The 28x28 image the model read (PNG)."""
        return self._send("GET", f"/api/predictions/{prediction_id}/input").content

    def stats(self) -> Stats:
        return self._parse(Stats, self._send("GET", "/api/stats"))

    def models(self) -> ModelRegistry:
        """Registered model versions, promotions and rollbacks, the active model's card."""
        return self._parse(ModelRegistry, self._send("GET", "/api/models"))

    def model_accuracy(self) -> ModelAccuracy:
        """Accuracy from corrections per model version over time."""
        return self._parse(ModelAccuracy, self._send("GET", "/api/models/accuracy"))

    def request_retraining(self) -> RetrainJobId:
        """Queue a retraining for the trainer (admin token needed)."""
        return self._parse(RetrainJobId, self._send("POST", "/api/admin/retrain"))

    def retraining_jobs(self) -> RetrainJobs:
        """The most recent retraining jobs, newest first (admin token needed)."""
        return self._parse(RetrainJobs, self._send("GET", "/api/admin/retrain"))

    def health(self) -> bool:
        """True when the service answers /healthz; never raises."""
        try:
            self._send("GET", "/healthz")
        except ApiError:
            return False
        return True

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            headers = {**self._auth, **kwargs.pop("headers", {})}
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise ApiError(
                f"The prediction service at {self.base_url} did not answer within "
                f"{self.timeout_s:g} s. It may be busy or still starting: wait a moment and "
                "try again.",
                kind="timeout",
            ) from exc
        except httpx.TransportError as exc:
            raise ApiError(
                f"The prediction service at {self.base_url} cannot be reached ({exc}). "
                "Start it with `digits serve`, or point DIGITS_API_URL at it, then try again.",
                kind="unreachable",
            ) from exc
        if response.is_success:
            return response
        raise _error_for(response)

    def _parse(self, model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate(self._json_object(response))
        except ValidationError as exc:
            raise _invalid(
                response, f"its fields do not match ({exc.error_count()} errors)"
            ) from exc

    @staticmethod
    def _json_object(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise _invalid(response, "it is not JSON") from exc
        if not isinstance(body, dict):
            raise _invalid(response, "it is not a JSON object")
        return body


def _invalid(response: httpx.Response, why: str) -> ApiError:
    return ApiError(
        f"The prediction service sent an answer this app does not understand ({why}) for "
        f"{response.request.method} {response.request.url.path}. The app and the service may be "
        "different versions: update them together.",
        kind="invalid",
        status_code=response.status_code,
    )


def _detail(response: httpx.Response) -> str:
    """The API's `detail` as one line (FastAPI validation details are lists of errors)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = [
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        ]
        return "; ".join(parts)
    return str(detail) if detail is not None else response.reason_phrase


def _error_for(response: httpx.Response) -> ApiError:
    status = response.status_code
    detail = _detail(response)
    if status == 422 and any(word in detail.lower() for word in ("empty", "blank", "no drawing")):
        return ApiError(
            "The drawing is empty: draw a digit (0-9) and it will be read.",
            kind="empty",
            status_code=status,
            detail=detail,
        )
    if status == 404:
        return ApiError(
            f"The prediction service has no such record ({detail}). It may have been removed: "
            "reload the page.",
            kind="not_found",
            status_code=status,
            detail=detail,
        )
    if status < 500:
        return ApiError(
            f"The prediction service refused the request ({status}): {detail}.",
            kind="rejected",
            status_code=status,
            detail=detail,
        )
    return ApiError(
        f"The prediction service failed ({status}): {detail}. Try again in a moment; if it "
        "keeps failing, check the service's logs.",
        kind="server",
        status_code=status,
        detail=detail,
    )
