"""FastAPI dependencies: settings and the store, both created in the app's lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from schemas.settings import Settings

from api.store import PredictionStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> PredictionStore:
    store: PredictionStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[PredictionStore, Depends(get_store)]
