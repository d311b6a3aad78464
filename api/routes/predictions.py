"""Per-customer prediction lookups."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pymongo.errors import PyMongoError
from schemas.serving import CUSTOMER_ID_PATTERN, MODEL_NAME_PATTERN, CustomerPredictions

from api.deps import SettingsDep, StoreDep
from api.lookup import answer

router = APIRouter(prefix="/v1/customers", tags=["predictions"])
log = logging.getLogger("lakescore.api")

CustomerId = Annotated[
    str, Path(pattern=CUSTOMER_ID_PATTERN, max_length=64, description="The customer id.")
]
ModelName = Annotated[
    str | None,
    Query(pattern=MODEL_NAME_PATTERN, max_length=64, description="Only this model."),
]


@router.get("/{customer_id}/predictions", response_model=CustomerPredictions)
async def customer_predictions(
    customer_id: CustomerId, settings: SettingsDep, store: StoreDep, model: ModelName = None
) -> CustomerPredictions:
    degraded = False
    document: dict[str, Any] | None = None
    priors: dict[str, dict[str, Any]] = {}
    try:
        document = await store.get(customer_id)
        priors = await store.priors()
    except PyMongoError as exc:
        degraded = True
        log.warning("serving store unavailable: %s", type(exc).__name__)
    return answer(
        customer_id=customer_id,
        document=document,
        priors=priors,
        settings=settings,
        model=model,
        degraded=degraded,
        today=dt.datetime.now(dt.UTC).date(),
    )
