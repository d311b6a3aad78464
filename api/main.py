"""The lookup API: ``uvicorn api.main:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from schemas.settings import Settings, get_settings

from api.routes import health, predictions
from api.store import MongoPredictionStore, PredictionStore


def create_app(
    settings: Settings | None = None, *, store: PredictionStore | None = None
) -> FastAPI:
    """Build the app; settings and the store client are created in ``lifespan``, never at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()
        app.state.settings = resolved
        app.state.store = store or MongoPredictionStore(resolved.mongo)
        try:
            yield
        finally:
            await app.state.store.close()

    app = FastAPI(
        title="lakescore lookup API",
        version="0.1.0",
        description="Precomputed customer predictions, with a fallback for unknown customers.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(predictions.router)
    return app
