"""Answer tiers for one customer: precomputed batch score, else the model's prior, else a default."""

from __future__ import annotations

import datetime as dt
from typing import Any

from schemas.serving import CustomerPredictions, ModelPrediction
from schemas.settings import Settings


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
    batch = (document or {}).get("models", {})
    names = [model] if model else sorted(set(batch) | set(priors) | {settings.model.name})
    out: list[ModelPrediction] = []
    for name in names:
        hit = batch.get(name)
        if hit is not None:
            score_date = dt.date.fromisoformat(hit["score_date"])
            age = (today - score_date).days
            out.append(
                ModelPrediction(
                    model_name=name,
                    model_version=hit.get("model_version"),
                    score=hit["score"],
                    score_date=score_date,
                    scored_at=hit.get("scored_at"),
                    source="batch",
                    stale=age > settings.api.stale_after_days,
                )
            )
        elif name in priors:
            prior = priors[name]
            out.append(
                ModelPrediction(
                    model_name=name,
                    model_version=prior.get("model_version"),
                    score=prior["prior"],
                    score_date=None,
                    scored_at=None,
                    source="prior",
                )
            )
        else:
            out.append(
                ModelPrediction(
                    model_name=name,
                    model_version=None,
                    score=settings.api.default_prior,
                    score_date=None,
                    scored_at=None,
                    source="default",
                )
            )
    return CustomerPredictions(
        customer_id=customer_id,
        known=bool(batch) and any(p.source == "batch" for p in out),
        degraded=degraded,
        predictions=out,
    )
