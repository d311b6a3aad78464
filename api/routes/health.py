"""Liveness, readiness and Prometheus metrics (open: no API key, no customer data)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import PyMongoError

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (says nothing about its dependencies)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep, response: Response) -> dict[str, Any]:
    """Ready when MongoDB answers a ping and a cold-start model is loaded."""
    store_ok = True
    try:
        async with asyncio.timeout(services.reader.timeout_s * 2):
            await services.store.ping()
    except (PyMongoError, TimeoutError):
        store_ok = False
    model = services.models.current
    ready = store_ok and model is not None
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {
        "status": "ready" if ready else "unavailable",
        "store": "ok" if store_ok else "unreachable",
        "coldstart_model": None if model is None else f"{model.registered_name}/{model.version}",
        "registry": "ok" if services.models.registry_ok else "unreachable",
    }


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition format."""
    m = services.metrics
    m.cache_entries.set(services.reader.cache_entries)
    model = services.models.current
    m.model_version.set(float(model.version) if model and model.version.isdigit() else 0)
    served = services.reader.served
    age = served.age_s()
    m.data_age.set(math.nan if age is None else age)
    dates = served.score_dates
    m.score_date.clear()
    for name, stamp in dates.items():
        m.score_date.labels(name).set(stamp)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
