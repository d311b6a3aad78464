"""Reasons for every prediction, from the night's scoring through MongoDB to the HTTP answers."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from pyspark.sql import functions as F

from jobs.platform.lake import read_table
from jobs.platform.registry import configure_mlflow, load_booster
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.e2e.conftest import SCORE_DATE

pytestmark = pytest.mark.e2e
COUNT = 3


def _current(spark: Any, settings: Settings, n: int) -> list[Any]:
    """The n highest and n lowest scored customers of the night (both ends of the ranking)."""
    current = read_table(spark, settings, PREDICTIONS_CURRENT).where(
        F.col("model_name") == settings.model.name
    )
    return [
        *current.orderBy(F.col("score").desc()).limit(n).collect(),
        *current.orderBy(F.col("score").asc()).limit(n).collect(),
    ]


def test_every_scored_row_has_the_models_largest_contributions(
    spark: Any, settings: Settings, night: Any
) -> None:
    """The stored reasons are LightGBM's own TreeSHAP values (pred_contrib, computed here on
    the feature rows), the three largest by size, with the customer's feature values."""
    history = read_table(spark, settings, PREDICTIONS_HISTORY).where(
        F.col("score_date") == SCORE_DATE
    )
    assert history.where(F.col("reasons").isNull()).count() == 0
    assert history.where(F.size("reasons") != COUNT).count() == 0
    assert {r[0] for r in history.select("reasons_policy").distinct().collect()} == {"all"}

    rows = _current(spark, settings, 10)
    configure_mlflow(settings)
    booster = load_booster(model_name=settings.model.name, version=rows[0].model_version)
    names = list(booster.feature_name())
    ids = [r.customer_id for r in rows]
    features = {
        r.customer_id: r
        for r in read_table(spark, settings, CUSTOMER_FEATURES)
        .where((F.col("as_of_date") == SCORE_DATE) & F.col("customer_id").isin(ids))
        .collect()
    }
    matrix = np.array(
        [[np.nan if features[c][n] is None else float(features[c][n]) for n in names] for c in ids]
    )
    phi = booster.predict(matrix, pred_contrib=True)[:, :-1]
    for i, row in enumerate(rows):
        order = sorted(range(len(names)), key=lambda j: (-abs(phi[i, j]), j))[:COUNT]
        assert [r.feature for r in row.reasons] == [names[j] for j in order], row.customer_id
        for reason, j in zip(row.reasons, order, strict=True):
            assert reason.contribution == pytest.approx(phi[i, j], abs=1e-9)
            want = matrix[i, j]
            assert (reason.value is None) if np.isnan(want) else reason.value == want


def test_the_api_serves_the_reasons_delta_holds(
    spark: Any, settings: Settings, api_url: str
) -> None:
    rows = _current(spark, settings, 3)
    want = {
        r.customer_id: [
            {"feature": x.feature, "contribution": x.contribution, "value": x.value}
            for x in r.reasons
        ]
        for r in rows
    }
    for customer, reasons in want.items():
        resp = httpx.get(f"{api_url}/v1/customers/{customer}/predictions", timeout=5)
        assert resp.status_code == 200
        [prediction] = resp.json()["predictions"]
        assert prediction["source"] == "batch"
        assert prediction["reasons"] == reasons, customer

    resp = httpx.post(
        f"{api_url}/v1/predictions/batch",
        json={"customer_ids": [*want, "NOT-A-CUSTOMER"]},
        timeout=5,
    )
    assert resp.status_code == 200
    served = {r["customer_id"]: r["predictions"][0]["reasons"] for r in resp.json()["results"]}
    assert served == {**want, "NOT-A-CUSTOMER": None}  # a prior has no reasons


def test_the_coldstart_answer_has_its_own_reasons(settings: Settings, api_url: str) -> None:
    context = {"first_order_amount": 45.5, "first_order_items": 2}
    resp = httpx.post(
        f"{api_url}/v1/customers/NEW-REASONS-1/coldstart", json={"context": context}, timeout=5
    )
    assert resp.status_code == 200
    [prediction] = resp.json()["predictions"]
    assert prediction["source"] == "coldstart"
    reasons = prediction["reasons"]
    assert 1 <= len(reasons) <= COUNT
    sizes = [abs(r["contribution"]) for r in reasons]
    assert sizes == sorted(sizes, reverse=True)
    by_feature = {r["feature"]: r["value"] for r in reasons}
    for name, value in context.items():  # what the request sent is shown as sent
        if name in by_feature:
            assert by_feature[name] == value

    bare = httpx.post(f"{api_url}/v1/customers/NEW-REASONS-2/coldstart", json={}, timeout=5)
    [prior] = bare.json()["predictions"]
    assert prior["source"] == "segment_prior" and prior["reasons"] is None
