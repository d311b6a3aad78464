"""The cold-start model on CDNOW: trained, gated, registered, and loaded the way the API loads it."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from api.coldstart import fetch
from jobs.lakehouse.ingest import cdnow_path, ingest_orders
from jobs.platform.lake import read_table
from jobs.platform.registry import CHALLENGER, CHAMPION, configure_mlflow, version_by_alias
from jobs.training.coldstart import ColdStartResult, train_coldstart
from jobs.training.coldstart_data import encode_frame
from schemas.coldstart import CATEGORICAL, COLDSTART_SUFFIX, FEATURE_ORDER, ColdStartContext, encode
from schemas.settings import Settings
from schemas.tables import GATE_DECISIONS

pytestmark = pytest.mark.integration

SCORE_DATE = dt.date(1998, 2, 1)
BASE = "it_cs_purchase_30d"
NAME = BASE + COLDSTART_SUFFIX


@pytest.fixture(scope="module")
def small(settings: Settings) -> Settings:
    model = settings.model.model_copy(
        update={"name": BASE, "training_dates": 3, "coldstart_num_boost_round": 60}
    )
    return settings.model_copy(update={"model": model})


@pytest.fixture(scope="module")
def trained(spark: Any, small: Settings) -> ColdStartResult:
    ingest_orders(spark, small, path=cdnow_path())
    return train_coldstart(spark, small, score_date=SCORE_DATE)


def test_first_coldstart_model_beats_the_prior_and_is_champion(
    small: Settings, trained: ColdStartResult
) -> None:
    assert trained.model_name == NAME
    assert trained.decision.promote, trained.decision.reason
    assert trained.metrics["roc_auc"] > trained.baselines["prior"]["roc_auc"]
    champion = version_by_alias(configure_mlflow(small), model_name=NAME, alias=CHAMPION)
    assert champion is not None and str(champion.version) == trained.version


def test_spec_covers_every_categorical_and_a_plausible_prior(trained: ColdStartResult) -> None:
    spec = trained.spec
    assert spec.feature_order == list(FEATURE_ORDER)
    assert set(spec.categorical_levels) == set(CATEGORICAL)  # CDNOW: all empty, unknown -> NaN
    assert 0.0 < spec.global_prior < 0.5


def test_the_api_loader_gets_the_champion_and_scores_requests(
    small: Settings, trained: ColdStartResult, tmp_path: Path
) -> None:
    model = fetch(tracking_uri=small.mlflow.tracking_uri, name=NAME, cache_dir=tmp_path, known=None)
    assert model is not None and model.version == trained.version
    assert model.spec == trained.spec
    recent = ColdStartContext(days_since_signup=3, first_order_amount=80.0, first_order_items=4)
    unknown_country = recent.model_copy(update={"country": "XX"})
    score = model.score(recent)
    assert 0.0 < score < 1.0
    assert model.score(unknown_country) == pytest.approx(score)  # unseen level encodes as NaN
    assert model.answer(ColdStartContext()) == (trained.spec.global_prior, "segment_prior")


def test_registered_lightgbm_model_equals_the_native_text_model(
    small: Settings, trained: ColdStartResult, tmp_path: Path
) -> None:
    configure_mlflow(small)
    info = mlflow.models.get_model_info(f"models:/{NAME}/{trained.version}")
    assert info.signature.inputs.input_names() == list(FEATURE_ORDER)
    model = fetch(tracking_uri=small.mlflow.tracking_uri, name=NAME, cache_dir=tmp_path, known=None)
    assert model is not None
    rows = pd.DataFrame(
        {
            "country": [None, None],
            "channel": [None, None],
            "device": [None, None],
            "days_since_signup": [10.0, 300.0],
            "first_order_amount": [15.0, 200.0],
            "first_order_items": [1.0, 6.0],
        }
    )
    x = encode_frame(rows, trained.spec)
    logged = mlflow.pyfunc.load_model(f"models:/{NAME}/{trained.version}").predict(x)
    assert np.asarray(logged, dtype=float) == pytest.approx(model.booster.predict(x.to_numpy()))


def test_vectorised_encoding_matches_the_contract_encode(trained: ColdStartResult) -> None:
    spec = trained.spec.model_copy(
        update={"categorical_levels": {"country": ["US", "DE"], "channel": ["web"], "device": []}}
    )
    contexts = [
        ColdStartContext(country="DE", channel="web", days_since_signup=5, first_order_amount=9.5),
        ColdStartContext(country="FR", device="ios", first_order_items=2),
        ColdStartContext(),
    ]
    frame = pd.DataFrame([c.model_dump() for c in contexts])
    vectorised = encode_frame(frame, spec).to_numpy()
    for row, context in zip(vectorised, contexts, strict=True):
        expected = encode(context, spec)
        assert all(
            (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(row, expected, strict=True)
        )


def test_request_time_features_are_point_in_time_and_use_the_profile(spark: Any) -> None:
    from jobs.training.coldstart_data import coldstart_rows

    d = dt.date
    orders = spark.createDataFrame(
        [
            ("o1", "A", d(2023, 1, 5), 2, 30.0),
            ("o2", "A", d(2023, 1, 20), 9, 99.0),  # later order: not the first one
            ("o3", "B", d(2023, 2, 3), 1, 10.0),  # on the as-of date: label, not a feature
            ("o4", "A", d(2023, 2, 10), 1, 5.0),
        ],
        "order_id STRING, customer_id STRING, order_date DATE, quantity INT, amount DOUBLE",
    )
    customers = spark.createDataFrame(
        [
            ("A", d(2023, 1, 1), "DE", "web", "ios"),
            ("B", d(2023, 1, 30), "US", "app", None),
            ("C", d(2023, 3, 1), "US", "web", None),  # signs up after the as-of date
        ],
        "customer_id STRING, signup_date DATE, country STRING, channel STRING, device STRING",
    )
    rows = {
        r.customer_id: r
        for r in coldstart_rows(orders, customers, as_of=d(2023, 2, 3), horizon_days=30).collect()
    }
    assert set(rows) == {"A", "B"}
    a, b = rows["A"], rows["B"]
    assert (a.days_since_signup, a.first_order_amount, a.first_order_items) == (33.0, 30.0, 2.0)
    assert (a.country, a.channel, a.device, a.label) == ("DE", "web", "ios", 1)
    assert (b.days_since_signup, b.first_order_amount, b.label) == (4.0, None, 1)


@pytest.fixture(scope="module")
def retrained(spark: Any, small: Settings, trained: ColdStartResult) -> ColdStartResult:
    """The same training again: the champion (``trained``) is scored through its own spec."""
    return train_coldstart(spark, small, score_date=SCORE_DATE)


def test_the_run_is_validated_logged_and_recorded_like_every_model(
    spark: Any, small: Settings, trained: ColdStartResult
) -> None:
    client = configure_mlflow(small)
    assert client.get_model_version(NAME, trained.version).tags["validation"] == "passed"
    run = client.get_run(trained.run_id)
    assert run.data.tags["gate.verdict"] == "promote"
    assert run.data.params["features"] == ",".join(FEATURE_ORDER)
    assert run.data.metrics["baseline_prior_roc_auc"] == pytest.approx(
        trained.baselines["prior"]["roc_auc"]
    )
    listed = {f.path for f in client.list_artifacts(trained.run_id, "coldstart")}
    assert listed == {"coldstart/model.txt", "coldstart/spec.json"}
    row = (
        read_table(spark, small, GATE_DECISIONS)
        .where((F.col("model_name") == NAME) & (F.col("candidate_version") == trained.version))
        .collect()
    )
    assert [(r.verdict, r.champion_version) for r in row] == [("promote", None)]
    assert row[0].baseline_prior_roc_auc == pytest.approx(trained.baselines["prior"]["roc_auc"])


def test_a_retrained_twin_is_judged_against_the_champion_on_its_own_encoding(
    small: Settings, trained: ColdStartResult, retrained: ColdStartResult
) -> None:
    assert retrained.champion_version == trained.version
    assert retrained.champion_metrics == trained.metrics  # same rows, data and seed
    assert retrained.decision.verdict == "reject"  # a tie keeps the champion
    client = configure_mlflow(small)
    aliases = [version_by_alias(client, model_name=NAME, alias=a) for a in (CHAMPION, CHALLENGER)]
    assert [None if mv is None else str(mv.version) for mv in aliases] == [
        trained.version,
        retrained.version,
    ]


def test_the_sample_bound_counts_each_customer_once(spark: Any) -> None:
    """The row bound the cold-start sample is sized by equals the rows coldstart_rows gives
    (counted on each side): a customer with an order and a profile is one row, not two."""
    from jobs.training.coldstart import entry_dates
    from jobs.training.coldstart_data import coldstart_rows
    from jobs.training.trainset import customers_before

    d = dt.date
    orders = spark.createDataFrame(
        [
            ("o1", "A", d(2023, 1, 5), 1, 1.0),  # A: profile and orders
            ("o2", "A", d(2023, 2, 9), 1, 1.0),
            ("o3", "D", d(2023, 1, 25), 1, 1.0),  # D: orders, no profile
            ("o4", "E", d(2023, 1, 2), 1, 1.0),  # E: orders before a later signup
        ],
        "order_id STRING, customer_id STRING, order_date DATE, quantity INT, amount DOUBLE",
    )
    customers = spark.createDataFrame(
        [
            ("A", d(2023, 1, 1), "DE", "web", "ios"),
            ("B", d(2023, 1, 30), "US", "app", None),  # profile only
            ("C", None, "US", "web", None),  # no signup day, no order: never a row
            ("E", d(2023, 2, 1), "FR", "web", None),
        ],
        "customer_id STRING, signup_date DATE, country STRING, channel STRING, device STRING",
    )
    entries = entry_dates(orders, customers)
    for as_of in (d(2023, 1, 2), d(2023, 1, 3), d(2023, 1, 26), d(2023, 2, 1), d(2023, 3, 1)):
        rows = coldstart_rows(orders, customers, as_of=as_of, horizon_days=30).count()
        assert customers_before(entries, as_of) == rows, as_of
    assert customers_before(entries, d(2023, 3, 1)) == 4  # A, B, D, E
