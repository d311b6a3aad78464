"""Prediction lookups: one customer, a batch of customers, and cold start with request context."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, status
from schemas.coldstart import ColdStartContext
from schemas.serving import (
    CUSTOMER_ID_PATTERN,
    MODEL_NAME_PATTERN,
    BatchLookupRequest,
    BatchLookupResponse,
    ColdStartRequest,
    CustomerPredictions,
)

from api.deps import Services, services_of
from api.lookup import answer, coldstart_answer
from api.reader import StoreUnavailableError
from api.respond import finish

router = APIRouter(prefix="/v1", tags=["predictions"])

CustomerId = Annotated[
    str, Path(pattern=CUSTOMER_ID_PATTERN, max_length=64, description="The customer id.")
]
ModelName = Annotated[
    str | None,
    Query(pattern=MODEL_NAME_PATTERN, max_length=64, description="Only this model."),
]
ALLOWED_SINGLE = frozenset({"model"})
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Unknown query parameters."},
    401: {"description": "Missing or invalid API key."},
    413: {"description": "Request body too large."},
    429: {"description": "Rate limit exceeded."},
    503: {"description": "Overloaded: retry shortly."},
}


def today() -> dt.date:
    """The UTC date (staleness is counted in UTC days)."""
    return dt.datetime.now(dt.UTC).date()


async def _priors(services: Services) -> dict[str, dict[str, Any]]:
    try:
        return await services.reader.priors()
    except StoreUnavailableError:
        return {}


@router.get(
    "/customers/{customer_id}/predictions",
    response_model=CustomerPredictions,
    responses=ERRORS,
)
async def customer_predictions(
    request: Request, customer_id: CustomerId, model: ModelName = None
) -> Response:
    """All models of one customer (or one model): the batch score, else the model's prior."""
    services = services_of(request, allowed_query=ALLOWED_SINGLE)
    result = await single_lookup(services, customer_id=customer_id, model=model)
    return finish(
        request,
        services,
        route="single",
        payload=result,
        answers=[result],
        degraded=result.degraded,
    )


async def single_lookup(
    services: Services, *, customer_id: str, model: str | None
) -> CustomerPredictions:
    """One customer's answer (shared with the middleware's fast path in ``api.fastpath``)."""
    degraded = False
    document = None
    try:
        document = await services.reader.get(customer_id)
    except StoreUnavailableError:
        degraded = True
    hit = document is not None and model is not None and model in document.get("models", {})
    priors = {} if hit else await _priors(services)
    return answer(
        customer_id=customer_id,
        document=document,
        priors=priors,
        settings=services.settings,
        model=model,
        degraded=degraded,
        today=today(),
    )


@router.post(
    "/predictions/batch",
    response_model=BatchLookupResponse,
    responses=ERRORS,
)
async def batch_predictions(
    request: Request, body: Annotated[BatchLookupRequest, Body()]
) -> Response:
    """Up to 1,000 customers in one request, read with one database round trip (``$in``)."""
    services = services_of(request)
    limit = services.settings.api.max_batch_ids
    if len(body.customer_ids) > limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {limit} customer ids per request"
        )
    degraded = False
    documents: dict[str, Any] = {}
    try:
        documents = await services.reader.get_many(body.customer_ids)
    except StoreUnavailableError:
        degraded = True
    priors = await _priors(services)
    day = today()
    results = [
        answer(
            customer_id=cid,
            document=documents.get(cid),
            priors=priors,
            settings=services.settings,
            model=body.model,
            degraded=degraded,
            today=day,
        )
        for cid in body.customer_ids
    ]
    payload = BatchLookupResponse(degraded=degraded, results=results)
    return finish(
        request, services, route="batch", payload=payload, answers=results, degraded=degraded
    )


@router.post(
    "/customers/{customer_id}/coldstart",
    response_model=CustomerPredictions,
    responses=ERRORS,
)
async def coldstart_prediction(
    request: Request, customer_id: CustomerId, body: Annotated[ColdStartRequest, Body()]
) -> Response:
    """The main model for a customer the website describes: batch score, cold-start model, prior."""
    services = services_of(request)
    result = await coldstart_lookup(services, customer_id=customer_id, context=body.context)
    return finish(
        request,
        services,
        route="coldstart",
        payload=result,
        answers=[result],
        degraded=result.degraded,
    )


async def coldstart_lookup(
    services: Services, *, customer_id: str, context: ColdStartContext
) -> CustomerPredictions:
    """Batch score, cold-start model, prior (shared with the fast path in ``api.fastpath``)."""
    degraded = False
    document = None
    try:
        document = await services.reader.get(customer_id)
    except StoreUnavailableError:
        degraded = True
    model = services.models.current
    name = services.settings.model.name
    has_batch = document is not None and name in (document.get("models") or {})
    priors = {} if has_batch or model is not None else await _priors(services)
    return coldstart_answer(
        customer_id=customer_id,
        document=document,
        context=context,
        coldstart=model,
        priors=priors,
        settings=services.settings,
        degraded=degraded,
        today=today(),
    )
