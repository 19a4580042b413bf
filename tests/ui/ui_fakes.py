"""A fake API client for page tests: the API's behaviour in memory, behind the same interface."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from PIL import Image

from digits.schemas import (
    HistoryFilter,
    PredictionOut,
    PredictionPage,
    PredictionRecord,
    ReliabilityBin,
    Source,
    Stats,
    Status,
    VersionAccuracy,
)
from digits.ui.client import ApiClient, ApiError

START = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def png(size: int = 28, value: int = 255) -> bytes:
    out = io.BytesIO()
    Image.new("L", (size, size), value).save(out, format="PNG")
    return out.getvalue()


def probabilities_for(digit: int, confidence: float) -> list[float]:
    rest = (1.0 - confidence) / 9
    return [confidence if d == digit else rest for d in range(10)]


class FakeClient(ApiClient):
    """The API's behaviour in memory: upsert by drawing_id, labels, filters, stats."""

    def __init__(self) -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise AssertionError(f"FakeClient made a real request: {request.url}")

        super().__init__("http://fake.test", transport=httpx.MockTransport(refuse))
        self.records: list[PredictionRecord] = []
        self.posts: list[dict[str, Any]] = []
        self.labels: list[tuple[str, int | None]] = []
        self.next_digit = 7
        self.next_confidence = 0.95
        self.next_status: Status | None = None  # None: from the confidence
        self.fail: ApiError | None = None
        self.clock = START

    def add(
        self,
        digit: int,
        *,
        confidence: float = 0.9,
        true_label: int | None = None,
        source: Source = "canvas",
        model_version: str = "v1",
        status: Status | None = None,
        not_a_digit: bool = False,
    ) -> PredictionRecord:
        self.clock += timedelta(minutes=1)
        record = PredictionRecord(
            id=uuid.uuid4(),
            digit=digit,
            confidence=confidence,
            probabilities=probabilities_for(digit, confidence),
            status=status or ("ok" if confidence >= 0.6 else "uncertain"),
            model_version=model_version,
            created_at=self.clock,
            source=source,
            drawing_id=None,
            true_label=true_label,
            not_a_digit=not_a_digit,
            labelled_at=None if true_label is None and not not_a_digit else self.clock,
        )
        self.records.insert(0, record)
        return record

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def predict(
        self,
        image: bytes,
        *,
        source: Source = "canvas",
        drawing_id: str | None = None,
        filename: str = "drawing.png",
        content_type: str = "image/png",
    ) -> PredictionOut:
        self.posts.append(
            {
                "image": image,
                "source": source,
                "drawing_id": drawing_id,
                "filename": filename,
                "content_type": content_type,
            }
        )
        self._check()
        if image == b"blank":
            raise ApiError("The drawing is empty.", kind="empty", status_code=422)
        record = self.add(
            self.next_digit,
            confidence=self.next_confidence,
            source=source,
            status=self.next_status,
        )
        if drawing_id is not None:
            previous = next(
                (
                    r
                    for r in self.records[1:]
                    if str(r.drawing_id) == drawing_id and r.true_label is None
                ),
                None,
            )
            record_id = previous.id if previous else record.id
            if previous:
                self.records.remove(previous)
            record = record.model_copy(
                update={"id": record_id, "drawing_id": uuid.UUID(drawing_id)}
            )
            self.records[0] = record
        return PredictionOut.model_validate(record.model_dump())

    def label(self, prediction_id: uuid.UUID | str, true_label: int | None) -> PredictionRecord:
        self._check()
        self.labels.append((str(prediction_id), true_label))
        for i, r in enumerate(self.records):
            if str(r.id) == str(prediction_id):
                self.records[i] = r.model_copy(
                    update={
                        "true_label": true_label,
                        "not_a_digit": true_label is None,
                        "labelled_at": self.clock,
                    }
                )
                return self.records[i]
        raise ApiError("no such record", kind="not_found", status_code=404)

    def list_predictions(self, query: HistoryFilter | None = None) -> PredictionPage:
        self._check()
        query = query or HistoryFilter()
        digit, true_label, outcome = query.digit, query.true_label, query.outcome
        status, not_a_digit, offset, limit = (
            query.status, query.not_a_digit, query.offset, query.limit
        )  # fmt: skip
        keep: Callable[[PredictionRecord], bool] = {
            None: lambda r: True,
            "wrong": lambda r: r.true_label is not None and r.true_label != r.digit,
            "correct": lambda r: r.true_label is not None and r.true_label == r.digit,
            "unlabelled": lambda r: r.true_label is None and not r.not_a_digit,
            "labelled": lambda r: r.true_label is not None or r.not_a_digit,
        }[outcome]
        rows = [
            r
            for r in self.records
            if keep(r)
            and (digit is None or r.digit == digit)
            and (true_label is None or r.true_label == true_label)
            and (status is None or r.status == status)
            and (not_a_digit is None or r.not_a_digit == not_a_digit)
        ]
        return PredictionPage(items=rows[offset : offset + limit], total=len(rows))

    def image_png(self, prediction_id: uuid.UUID | str) -> bytes:
        self._check()
        return png(56, 255)

    def input_png(self, prediction_id: uuid.UUID | str) -> bytes:
        self._check()
        return png(28, 0)

    def stats(self) -> Stats:
        self._check()
        labelled = [r for r in self.records if r.true_label is not None]
        correct = [r for r in labelled if r.true_label == r.digit]
        matrix = [[0] * 10 for _ in range(10)]
        for r in labelled:
            assert r.true_label is not None
            matrix[r.true_label][r.digit] += 1
        per_digit: dict[str, float | None] = {}
        for d in range(10):
            rows = [r for r in labelled if r.true_label == d]
            per_digit[str(d)] = (sum(r.digit == d for r in rows) / len(rows)) if rows else None
        bins = []
        for i in range(10):
            lo, hi = i / 10, (i + 1) / 10
            rows = [
                r for r in labelled if lo <= r.confidence < hi or (hi == 1 and r.confidence == 1)
            ]
            bins.append(
                ReliabilityBin(
                    lower=lo,
                    upper=hi,
                    count=len(rows),
                    mean_confidence=sum(r.confidence for r in rows) / len(rows) if rows else None,
                    accuracy=sum(r.true_label == r.digit for r in rows) / len(rows)
                    if rows
                    else None,
                )
            )
        return Stats(
            total=len(self.records),
            labelled=len(labelled),
            correct=len(correct),
            accuracy=len(correct) / len(labelled) if labelled else None,
            mean_confidence=(
                sum(r.confidence for r in self.records) / len(self.records)
                if self.records
                else None
            ),
            uncertain=sum(r.status == "uncertain" for r in self.records),
            not_a_digit=sum(r.status == "not_a_digit" for r in self.records),
            not_a_digit_labels=sum(r.not_a_digit for r in self.records),
            per_digit_accuracy=per_digit,
            per_model_version=[
                VersionAccuracy(
                    model_version="v1",
                    labelled=len(labelled),
                    accuracy=len(correct) / len(labelled) if labelled else None,
                )
            ],
            confusion_matrix=matrix,
            reliability=bins,
        )
