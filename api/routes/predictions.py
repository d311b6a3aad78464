"""Prediction lookups over HTTP: one customer, a batch of customers, and cold start with request
context. The routes check and answer; the answers themselves come from ``api.lookup_service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, status
from schemas.serving import (
    CUSTOMER_ID_PATTERN,
    MODEL_NAME_PATTERN,
    BatchLookupRequest,
    BatchLookupResponse,
    ColdStartRequest,
    CustomerPredictions,
)

from api.deps import services_of
from api.lookup_service import batch_lookup, coldstart_lookup, single_lookup
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
    payload = await batch_lookup(services, customer_ids=body.customer_ids, model=body.model)
    return finish(
        request,
        services,
        route="batch",
        payload=payload,
        answers=payload.results,
        degraded=payload.degraded,
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
