"""The end of every lookup: metrics, the sampled request log, and JSON bytes straight out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
    record_sources(
        scope,
        services,
        route=route,
        sources=[p.source for a in answers for p in a.predictions],
        served=lambda: served(answers),
        degraded=degraded,
        answers=answers,
    )


def served(answers: list[CustomerPredictions]) -> list[dict[str, Any]]:
    """What the logs keep of each prediction served (never keys; the sampled request log
    drops the score): the experiment and arm when the model is split (``api.experiments``)."""
    out = []
    for a in answers:
        for p in a.predictions:
            line = {
                "customer_id": a.customer_id,
                "model_name": p.model_name,
                "model_version": p.model_version,
                "score": p.score,
                "source": p.source,
            }
            if p.arm is not None:
                line["experiment"] = p.experiment
                line["arm"] = p.arm
            out.append(line)
    return out


def record_sources(
    scope: Scope,
    services: Services,
    *,
    route: str,
    sources: list[str],
    served: Callable[[], list[dict[str, Any]]],
    degraded: bool,
    answers: list[CustomerPredictions] | None = None,
) -> None:
    """Metrics for every request; the request log's line (built only when sampled)."""
    state = scope.get("state", {})
    started = state.get("t0")
    latency = time.perf_counter() - started if started is not None else 0.0
    services.metrics.observe(
        route=route,
        sources=sources,
        seconds=latency,
        degraded=degraded,
        stale=services.reader.served.stale(),
    )
    log = services.request_log
    every = services.served_log
    if every is None and not log.sampled():
        return
    request_id = state.get("request_id", "")
    if every is not None:
        if answers is not None:
            every.record_answers(
                request_id=request_id,
                route=route,
                latency_s=latency,
                degraded=degraded,
                rows=len(sources),
                answers=answers,
            )
        else:
            every.record_served(
                request_id=request_id,
                route=route,
                latency_s=latency,
                degraded=degraded,
                served=served(),
            )
        if not log.sampled():
            return
    log.record(
        request_id=request_id, route=route, latency_s=latency, degraded=degraded, answers=served()
    )
