"""The lookup service: every answer is made here, for both entrances (the FastAPI routes in
``api.routes.predictions`` and the ASGI shortcut in ``api.asgi_shortcut``).

Tiers: the precomputed batch score, else (cold start) the cold-start model or its segment
prior, else the model's prior, else ``api.default_prior``; every prediction says which
(``source``). The documents come through the read path (``api.reads``); when the store is
unavailable the answer is still given, marked ``degraded``. Staleness is counted in UTC
days (``today``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from schemas.coldstart import ColdStartContext
from schemas.serving import BatchLookupResponse, CustomerPredictions, ModelPrediction
from schemas.settings import Settings

from api.coldstart import ColdStartModel
from api.deps import Services
from api.experiments import Split, arm_entry
from api.reads import StoreUnavailableError


def today() -> dt.date:
    """The UTC date (staleness is counted in UTC days)."""
    return dt.datetime.now(dt.UTC).date()


# ---------------------------------------------------------------- lookups (read, then tiers)


async def _read_one(services: Services, customer_id: str) -> tuple[Any, bool]:
    """``(document or None, degraded)``: degraded when the store could not answer."""
    try:
        return await services.reader.get(customer_id), False
    except StoreUnavailableError:
        return None, True


async def single_lookup(
    services: Services, *, customer_id: str, model: str | None
) -> CustomerPredictions:
    """All models of one customer (or only ``model``)."""
    document, degraded = await _read_one(services, customer_id)
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
        splits=services.splits,
    )


async def batch_lookup(
    services: Services, *, customer_ids: list[str], model: str | None
) -> BatchLookupResponse:
    """Many customers, read with one database round trip (``$in``)."""
    degraded = False
    documents: dict[str, Any] = {}
    try:
        documents = await services.reader.get_many(customer_ids)
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
            model=model,
            degraded=degraded,
            today=day,
            splits=services.splits,
        )
        for cid in customer_ids
    ]
    return BatchLookupResponse(degraded=degraded, results=results)


async def coldstart_lookup(
    services: Services, *, customer_id: str, context: ColdStartContext
) -> CustomerPredictions:
    """The main model for a customer the website describes: batch score, cold-start model, prior."""
    document, degraded = await _read_one(services, customer_id)
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
        split=services.splits.get(services.settings.model.name),
    )


async def _priors(services: Services) -> dict[str, dict[str, Any]]:
    try:
        return await services.reader.priors()
    except StoreUnavailableError:
        return {}


# ---------------------------------------------------------------- tiers (pure)


def batch_prediction(
    *,
    name: str,
    hit: dict[str, Any],
    stale_after_days: int,
    today: dt.date,
    split: Split | None = None,
    customer_id: str = "",
) -> ModelPrediction:
    """The night's score of ``name`` from the customer's document entry: the champion's, or,
    under a traffic split, the score of the customer's arm (the champion's when the night
    has none of the arm's version for this customer)."""
    score_date = dt.date.fromisoformat(hit["score_date"])
    score, version, reasons = hit["score"], hit.get("model_version"), hit.get("reasons")
    experiment = arm = None
    if split is not None:
        chosen = split.arm_of(customer_id)
        experiment, arm = split.experiment, chosen.name
        served = arm_entry(chosen, hit)
        if served is not None:
            (score, version), reasons = served, None  # reasons are the champion's only
    return ModelPrediction(
        model_name=name,
        model_version=version,
        score=score,
        score_date=score_date,
        scored_at=hit.get("scored_at"),
        source="batch",
        stale=(today - score_date).days > stale_after_days,
        reasons=reasons,
        experiment=experiment,
        arm=arm,
    )


def fallback_prediction(
    *,
    name: str,
    priors: dict[str, dict[str, Any]],
    default_prior: float,
    split: Split | None = None,
    customer_id: str = "",
) -> ModelPrediction:
    experiment = arm = None
    if split is not None:  # the arm is named even where it does not change the answer
        experiment, arm = split.experiment, split.arm_of(customer_id).name
    prior = priors.get(name)
    if prior is not None:
        return ModelPrediction(
            model_name=name,
            model_version=prior.get("model_version"),
            score=prior["prior"],
            score_date=None,
            scored_at=None,
            source="prior",
            experiment=experiment,
            arm=arm,
        )
    return ModelPrediction(
        model_name=name,
        model_version=None,
        score=default_prior,
        score_date=None,
        scored_at=None,
        source="default",
        experiment=experiment,
        arm=arm,
    )


def answer(
    *,
    customer_id: str,
    document: dict[str, Any] | None,
    priors: dict[str, dict[str, Any]],
    settings: Settings,
    model: str | None,
    degraded: bool,
    today: dt.date,
    splits: dict[str, Split] | None = None,
) -> CustomerPredictions:
    """All models of one customer (or only ``model``): batch hits, else the model's prior;
    a split model's answer from the customer's arm (``splits``, by model)."""
    splits = splits or {}
    batch = (document or {}).get("models") or {}
    names = [model] if model else sorted(set(batch) | set(priors) | {settings.model.name})
    out: list[ModelPrediction] = []
    for name in names:
        hit = batch.get(name)
        if hit is not None:
            out.append(
                batch_prediction(
                    name=name,
                    hit=hit,
                    stale_after_days=settings.api.stale_after_days,
                    today=today,
                    split=splits.get(name),
                    customer_id=customer_id,
                )
            )
        else:
            out.append(
                fallback_prediction(
                    name=name,
                    priors=priors,
                    default_prior=settings.api.default_prior,
                    split=splits.get(name),
                    customer_id=customer_id,
                )
            )
    return CustomerPredictions(
        customer_id=customer_id,
        known=any(p.source == "batch" for p in out),
        degraded=degraded,
        predictions=out,
    )


def coldstart_answer(
    *,
    customer_id: str,
    document: dict[str, Any] | None,
    context: ColdStartContext,
    coldstart: ColdStartModel | None,
    priors: dict[str, dict[str, Any]],
    settings: Settings,
    degraded: bool,
    today: dt.date,
    split: Split | None = None,
) -> CustomerPredictions:
    """Tiers for the main model: batch score (from the customer's arm under a traffic split),
    cold-start model (or its segment prior), prior. Only the batch tier is split."""
    name = settings.model.name
    hit = ((document or {}).get("models") or {}).get(name)
    if hit is not None:
        prediction = batch_prediction(
            name=name,
            hit=hit,
            stale_after_days=settings.api.stale_after_days,
            today=today,
            split=split,
            customer_id=customer_id,
        )
    elif coldstart is not None:
        score, source = coldstart.answer(context)
        explain = source == "coldstart" and settings.scoring.reasons != "off"
        prediction = ModelPrediction(
            model_name=coldstart.registered_name,
            model_version=coldstart.version,
            score=score,
            score_date=None,
            scored_at=None,
            source=source,  # type: ignore[arg-type]
            reasons=(
                coldstart.reasons(context, count=settings.scoring.reasons_count)
                if explain
                else None
            ),
        )
    else:
        prediction = fallback_prediction(
            name=name,
            priors=priors,
            default_prior=settings.api.default_prior,
            split=split,
            customer_id=customer_id,
        )
    return CustomerPredictions(
        customer_id=customer_id,
        known=hit is not None,
        degraded=degraded,
        predictions=[prediction],
    )
