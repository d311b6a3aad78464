"""The lookup API: ``uvicorn api.main:create_app --factory``."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from schemas.settings import Settings, get_settings
from schemas.tables import SERVED
from starlette.types import ASGIApp

from api import errors
from api.asgi_shortcut import LookupShortcut
from api.deps import Services
from api.entry import LookupApp
from api.experiments import splits
from api.guard import GuardMiddleware
from api.logs import configure_logs
from api.metrics import Metrics
from api.model_holder import ModelHolder
from api.openapi import declare_api_key
from api.overload import Shedder
from api.prediction_store import MongoPredictionStore, PredictionStore
from api.reads import Reader, StoreUnavailableError
from api.requestlog import RequestLog
from api.routes import health, predictions
from api.security import KeyGuard
from api.served_log import ServedLog

log = logging.getLogger("lakescore.api")


def served_log(settings: Settings, metrics: Metrics) -> ServedLog | None:
    """The log of every answer served (``api.served_log``), or None when it is off."""
    cfg = settings.api
    if not cfg.served_log:
        return None
    return ServedLog(
        path=settings.table_path(SERVED.name),
        flush_s=cfg.served_log_flush_s,
        max_rows=cfg.served_log_max_rows,
        dropped=metrics.served_dropped,
        write_errors=metrics.served_write_errors,
    )


def create_app(
    settings: Settings | None = None, *, store: PredictionStore | None = None
) -> FastAPI:
    """Build the app; clients, models and background tasks start in ``lifespan``, never at import."""
    resolved = settings or get_settings()
    cfg = resolved.api
    configure_logs(cfg.log_format)  # uvicorn configured its loggers before calling us
    metrics = Metrics()
    key_guard = KeyGuard(cfg)
    shedder = Shedder(budget_s=cfg.shed_after_ms / 1e3, registry=metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_store = store or MongoPredictionStore(resolved.mongo)
        served_models = [resolved.model.name, *(m.name for m in resolved.model.additional)]
        reader = Reader(the_store, cfg, metrics=metrics, models=served_models)
        models = ModelHolder(resolved)
        request_log = RequestLog(sample_rate=cfg.request_log_sample_rate, path=cfg.request_log_path)
        services = Services(
            settings=resolved,
            store=the_store,
            reader=reader,
            models=models,
            metrics=metrics,
            request_log=request_log,
            key_guard=key_guard,
            splits=splits(resolved),
            served_log=served_log(resolved, metrics),
        )
        app.state.services = services
        request_log.start()
        if services.served_log is not None:
            services.served_log.start()
        await reader.start()
        with contextlib.suppress(StoreUnavailableError):
            await reader.priors()  # so that a later outage still has them
        await models.start()
        shedder.start()
        # What startup built (modules, schemas, clients, the model) lives as long as the
        # process: keep it out of the collector's full passes. Without this a full pass
        # walked ~360k objects and stopped the loop for 350 ms under load (the p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await shedder.stop()
            await models.stop()
            await reader.stop()
            request_log.stop()
            if services.served_log is not None:
                services.served_log.stop()  # the rows still buffered are written
            await the_store.close()

    def front(stack: ASGIApp) -> ASGIApp:
        """The guard, then the ASGI shortcut, then FastAPI's stack (see ``api.entry``)."""
        return GuardMiddleware(
            LookupShortcut(stack, max_body_bytes=cfg.max_body_bytes),
            metrics=metrics,
            key_guard=key_guard,
            key_header=cfg.api_key_header,
            max_concurrency=cfg.max_concurrency,
            max_body_bytes=cfg.max_body_bytes,
            shedder=shedder,
        )

    app = LookupApp(
        front=front,
        title="lakescore lookup API",
        version="0.2.0",
        description=(
            "Customer predictions: precomputed batch scores, a cold-start model for new "
            "customers and priors; every answer says where it came from (`source`)."
        ),
        lifespan=lifespan,
        max_body_size=cfg.max_body_bytes,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(predictions.router)
    declare_api_key(app, header=cfg.api_key_header)
    return app
