"""Request dependencies as ``Annotated`` aliases; everything comes from ``app.state``.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in the thread pool,
and a thread hop per attribute lookup costs more than the lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from digits.api.holder import ModelHolder
from digits.api.memory import SessionMemory
from digits.api.metrics import Metrics
from digits.api.number_store import NumberStore
from digits.api.sessions import check_admin
from digits.api.store import PredictionStore
from digits.config import Settings
from digits.loop.registry import Registry
from digits.predict import Predictor


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_holder(request: Request) -> ModelHolder | None:
    """None until the lifespan has loaded a model."""
    return getattr(request.app.state, "holder", None)


async def get_predictor(request: Request) -> Predictor:
    # Read once per request: a concurrent model swap cannot change it halfway.
    return request.app.state.holder.predictor


async def get_store(request: Request) -> PredictionStore:
    return request.app.state.store


async def get_number_store(request: Request) -> NumberStore:
    return request.app.state.numbers


async def get_memory(request: Request) -> SessionMemory:
    return request.app.state.memory


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
HolderDep = Annotated[ModelHolder | None, Depends(get_holder)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
StoreDep = Annotated[PredictionStore, Depends(get_store)]
NumberStoreDep = Annotated[NumberStore, Depends(get_number_store)]
MemoryDep = Annotated[SessionMemory, Depends(get_memory)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def require_admin(request: Request, settings: SettingsDep) -> None:
    """Bearer ``DIGITS_ADMIN_TOKEN``: 403 when none is configured or it is wrong, 401 when absent."""
    check_admin(request, settings)


AdminDep = Annotated[None, Depends(require_admin)]
