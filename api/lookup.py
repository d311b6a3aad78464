"""Answer tiers: precomputed batch score, else the cold-start model or segment prior, else priors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from schemas.coldstart import ColdStartContext
from schemas.serving import CustomerPredictions, ModelPrediction
from schemas.settings import Settings

from api.coldstart import ColdStartModel


def batch_prediction(
    *, name: str, hit: dict[str, Any], stale_after_days: int, today: dt.date
) -> ModelPrediction:
    score_date = dt.date.fromisoformat(hit["score_date"])
    return ModelPrediction(
        model_name=name,
        model_version=hit.get("model_version"),
        score=hit["score"],
        score_date=score_date,
        scored_at=hit.get("scored_at"),
        source="batch",
        stale=(today - score_date).days > stale_after_days,
    )


def fallback_prediction(
    *, name: str, priors: dict[str, dict[str, Any]], default_prior: float
) -> ModelPrediction:
    prior = priors.get(name)
    if prior is not None:
        return ModelPrediction(
            model_name=name,
            model_version=prior.get("model_version"),
            score=prior["prior"],
            score_date=None,
            scored_at=None,
            source="prior",
        )
    return ModelPrediction(
        model_name=name,
        model_version=None,
        score=default_prior,
        score_date=None,
        scored_at=None,
        source="default",
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
) -> CustomerPredictions:
    """All models of one customer (or only ``model``): batch hits, else the model's prior."""
    batch = (document or {}).get("models") or {}
    names = [model] if model else sorted(set(batch) | set(priors) | {settings.model.name})
    out: list[ModelPrediction] = []
    for name in names:
        hit = batch.get(name)
        if hit is not None:
            out.append(
                batch_prediction(
                    name=name, hit=hit, stale_after_days=settings.api.stale_after_days, today=today
                )
            )
        else:
            out.append(
                fallback_prediction(
                    name=name, priors=priors, default_prior=settings.api.default_prior
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
) -> CustomerPredictions:
    """Tiers for the main model: batch score, cold-start model (or its segment prior), prior."""
    name = settings.model.name
    hit = ((document or {}).get("models") or {}).get(name)
    if hit is not None:
        prediction = batch_prediction(
            name=name, hit=hit, stale_after_days=settings.api.stale_after_days, today=today
        )
    elif coldstart is not None:
        score, source = coldstart.answer(context)
        prediction = ModelPrediction(
            model_name=coldstart.registered_name,
            model_version=coldstart.version,
            score=score,
            score_date=None,
            scored_at=None,
            source=source,  # type: ignore[arg-type]
        )
    else:
        prediction = fallback_prediction(
            name=name, priors=priors, default_prior=settings.api.default_prior
        )
    return CustomerPredictions(
        customer_id=customer_id,
        known=hit is not None,
        degraded=degraded,
        predictions=[prediction],
    )
