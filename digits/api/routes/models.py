"""``/api/models``: the model registry, and each version's accuracy from corrections over time."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Literal

from fastapi import APIRouter

from digits.api.deps import PredictorDep, RegistryDep, StoreDep
from digits.db import queries
from digits.schemas import AccuracyPoint, ModelAccuracy, ModelRegistry

router = APIRouter(prefix="/api/models", tags=["models"])

DAY_BUCKETS_AFTER_S = 3 * 24 * 3600  # a longer history is shown per day, else per hour


@router.get("", response_model=ModelRegistry)
def list_models(registry: RegistryDep, predictor: PredictorDep) -> ModelRegistry:
    """Registered versions, the activation history (promotions, rollbacks), the active card."""
    index = registry.read()
    return ModelRegistry(
        active=index.active,
        serving=predictor.version,
        models=list(index.models.values()),
        events=index.events,
        card=registry.card(index.active) if index.active else None,
    )


def _bucket_start(at: datetime, bucket: Literal["hour", "day"]) -> datetime:
    at = at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if bucket == "day" else at


@router.get("/accuracy", response_model=ModelAccuracy)
def accuracy_over_time(store: StoreDep) -> ModelAccuracy:
    """Accuracy from corrections per model version and per hour (or day, for long histories)
    of the predictions' time."""
    with store.database.read() as session:
        outcomes = queries.labelled_outcomes(session)
    span = (outcomes[-1][0] - outcomes[0][0]).total_seconds() if outcomes else 0.0
    bucket: Literal["hour", "day"] = "day" if span > DAY_BUCKETS_AFTER_S else "hour"
    counts: dict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0])
    for at, version, digit, label in outcomes:
        seen = counts[(version, _bucket_start(at, bucket))]
        seen[0] += 1
        seen[1] += int(digit == label)
    points = [
        AccuracyPoint(
            model_version=version, start=start, labelled=n, correct=hits, accuracy=hits / n
        )
        for (version, start), (n, hits) in sorted(counts.items(), key=lambda kv: kv[0][1])
    ]
    return ModelAccuracy(bucket=bucket, points=points)
