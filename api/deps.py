"""The services a route uses (built once in the app's lifespan) and how routes get them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from schemas.settings import Settings

from api.experiments import Split
from api.metrics import Metrics
from api.model_holder import ModelHolder
from api.prediction_store import PredictionStore
from api.reads import Reader
from api.requestlog import RequestLog
from api.security import KeyGuard
from api.served_log import ServedLog


@dataclass(kw_only=True)
class Services:
    """Everything a route needs, created once per app in ``lifespan`` (one dependency per request)."""

    settings: Settings
    store: PredictionStore
    reader: Reader
    models: ModelHolder
    metrics: Metrics
    request_log: RequestLog
    key_guard: KeyGuard
    splits: dict[str, Split] = field(default_factory=dict)  # traffic splits, by model
    served_log: ServedLog | None = None  # every answer, to monitoring.served (api.served_log)


# Dependencies are ``async def``: FastAPI runs plain ``def`` ones in a thread pool, one hop each.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def services_of(request: Request, *, allowed_query: frozenset[str] = frozenset()) -> Services:
    """The app's services for a route, after refusing unknown query parameters (``id[$ne]=``,
    ``$where=``) instead of silently ignoring them. A plain call, not a FastAPI dependency:
    FastAPI's dependency solving is the largest cost of a cache hit."""
    if request.scope.get("query_string"):
        unknown = [k for k in request.query_params if k not in allowed_query]
        if unknown:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"unknown query parameters: {len(unknown)}"
            )
    services: Services = request.app.state.services
    return services
