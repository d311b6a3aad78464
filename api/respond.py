"""The end of every lookup: metrics, the sampled request log, and JSON bytes straight out."""

from __future__ import annotations

import time

from fastapi import Request, Response
from pydantic import BaseModel
from schemas.serving import CustomerPredictions
from starlette.types import Scope

from api.deps import Services


def finish(
    request: Request,
    services: Services,
    *,
    route: str,
    payload: BaseModel,
    answers: list[CustomerPredictions],
    degraded: bool,
) -> Response:
    record(request.scope, services, route=route, answers=answers, degraded=degraded)
    return Response(content=payload.model_dump_json(), media_type="application/json")


def record(
    scope: Scope,
    services: Services,
    *,
    route: str,
    answers: list[CustomerPredictions],
    degraded: bool,
) -> None:
    state = scope.get("state", {})
    started = state.get("t0")
    latency = time.perf_counter() - started if started is not None else 0.0
    sources = [p.source for a in answers for p in a.predictions]
    services.metrics.observe(route=route, sources=sources, seconds=latency, degraded=degraded)
    log = services.request_log
    if log.sampled():
        log.record(
            request_id=state.get("request_id", ""),
            route=route,
            latency_s=latency,
            degraded=degraded,
            answers=[
                {
                    "customer_id": a.customer_id,
                    "model_name": p.model_name,
                    "model_version": p.model_version,
                    "source": p.source,
                }
                for a in answers
                for p in a.predictions
            ],
        )
