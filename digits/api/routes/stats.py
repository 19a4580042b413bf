"""``/api/stats`` and ``/api/model``: how the model does, and which model answers."""

from __future__ import annotations

from fastapi import APIRouter

from digits.api.deps import PredictorDep, StoreDep
from digits.db import numbers, queries
from digits.schemas import ModelInfo, Stats

router = APIRouter(prefix="/api", tags=["stats"])


@router.get("/stats", response_model=Stats)
def get_stats(store: StoreDep) -> Stats:
    """Totals, accuracy from corrections (overall, per digit, per model), confusion, reliability;
    whole-number accuracy. The digits of numbers count as predictions."""
    with store.database.read() as session:
        return Stats.model_validate(queries.stats(session) | numbers.stats(session))


@router.get("/model", response_model=ModelInfo)
def get_model(predictor: PredictorDep) -> ModelInfo:
    """The model answering predictions now."""
    return ModelInfo(
        version=predictor.version,
        temperature=predictor.temperature,
        uncertain_threshold=predictor.uncertain_threshold,
        metrics=predictor.metrics,
        info=predictor.info(),
    )
