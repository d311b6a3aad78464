"""Reasons in the nightly scoring on real Spark + Delta: the policies, tables written before
reasons existed, and the sync carrying them into MongoDB."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pyspark.sql import functions as F

from jobs.platform.lake import ensure_table, read_table, table_path
from jobs.scoring.run import score_date
from jobs.sync.run import sync
from jobs.sync.state import served_collection
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = pytest.mark.integration

D0, D1, D2 = dt.date(2024, 2, 1), dt.date(2024, 2, 2), dt.date(2024, 2, 3)
N = 1_200
OLD_ROW = ("OLD-1", "purchase_30d", "1", "champion", 0.5, dt.date(2024, 1, 1), None, "r0", 0)


def _without_reasons(spec: Any) -> Any:
    """The table as it was before reasons: the same columns up to feature_table_version."""
    return dataclasses.replace(spec, ddl=spec.ddl.split(", reasons ")[0])


def _with(settings: Settings, **scoring: Any) -> Settings:
    return settings.model_copy(update={"scoring": settings.scoring.model_copy(update=scoring)})


@pytest.fixture(scope="module")
def lake(spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root: Path = tmp_path_factory.mktemp("reasons")
    s = isolated(settings, root)
    s = s.model_copy(
        update={"mongo": s.mongo.model_copy(update={"database": "r_" + uuid.uuid4().hex[:10]})}
    )
    register_tiny_model(s, trees=15, train_rows=2_000)
    for day, seed in ((D0, 1), (D1, 2), (D2, 3)):
        write_feature_partition(spark, s, as_of=day, customers=N, seed=seed)
    # A deployment from before reasons: both tables exist without the columns.
    old_history = _without_reasons(PREDICTIONS_HISTORY)
    ensure_table(spark, s, old_history)
    ensure_table(spark, s, _without_reasons(PREDICTIONS_CURRENT))
    spark.createDataFrame([OLD_ROW], old_history.ddl).write.format("delta").mode("append").save(
        table_path(s, PREDICTIONS_HISTORY)
    )
    return s


@pytest.fixture(scope="module")
def nights(spark: Any, lake: Settings) -> dict[dt.date, Any]:
    return {
        D0: score_date(spark, lake, score_date=D0),
        D1: score_date(spark, _with(lake, reasons="top_share", reasons_share=0.2), score_date=D1),
        D2: score_date(spark, _with(lake, reasons="off"), score_date=D2),
    }


def _rows(spark: Any, lake: Settings, day: dt.date) -> list[Any]:
    return read_table(spark, lake, PREDICTIONS_HISTORY).where(F.col("score_date") == day).collect()


def test_tables_from_before_reasons_gain_the_columns_and_keep_their_rows(
    spark: Any, lake: Settings, nights: dict[dt.date, Any]
) -> None:
    for spec in (PREDICTIONS_HISTORY, PREDICTIONS_CURRENT):
        assert read_table(spark, lake, spec).columns == spec.columns, spec.name
    [old] = (
        read_table(spark, lake, PREDICTIONS_HISTORY)
        .where(F.col("customer_id") == "OLD-1")
        .collect()
    )
    assert (old.score, old.reasons, old.reasons_policy) == (0.5, None, None)


def test_all_explains_every_row_and_records_the_policy(
    spark: Any, lake: Settings, nights: dict[dt.date, Any]
) -> None:
    rows = _rows(spark, lake, D0)
    assert len(rows) == N
    assert {r.reasons_policy for r in rows} == {"all"}
    assert all(r.reasons is not None and len(r.reasons) == 3 for r in rows)
    for r in rows:
        sizes = [abs(x.contribution) for x in r.reasons]
        assert sizes == sorted(sizes, reverse=True), r.customer_id
        assert len({x.feature for x in r.reasons}) == 3


def test_top_share_explains_the_highest_scores_only(
    spark: Any, lake: Settings, nights: dict[dt.date, Any]
) -> None:
    rows = _rows(spark, lake, D1)
    assert {r.reasons_policy for r in rows} == {"top_share:0.2"}
    explained = [r.score for r in rows if r.reasons is not None]
    others = [r.score for r in rows if r.reasons is None]
    # Chosen per scoring batch: at least the share of each, at most one more row per task.
    assert math.ceil(0.2 * N) <= len(explained) <= math.ceil(0.2 * N) + 2
    ranked = sorted((r.score for r in rows), reverse=True)
    assert min(explained) >= ranked[int(0.4 * N)]  # the top, not a random fifth
    assert sum(explained) / len(explained) > sum(others) / len(others)


def test_off_explains_nothing(spark: Any, lake: Settings, nights: dict[dt.date, Any]) -> None:
    rows = _rows(spark, lake, D2)
    assert len(rows) == N
    assert {r.reasons_policy for r in rows} == {"off"} and all(r.reasons is None for r in rows)


def test_the_sync_carries_the_reasons_of_current_into_the_documents(
    spark: Any, lake: Settings, nights: dict[dt.date, Any]
) -> None:
    """Current holds D2's rows (no reasons): a night with reasons again, then the sync."""
    score_date(spark, lake, score_date=D1)  # a re-run of D1 with reasons for all
    score_date(spark, lake, score_date=D2)
    result = sync(spark, lake, mode="full")
    assert result.verification.ok and result.verification.sampled > 0
    want = {
        r.customer_id: [x.asDict() for x in r.reasons]
        for r in read_table(spark, lake, PREDICTIONS_CURRENT).collect()
    }
    client: MongoClient[dict[str, Any]] = MongoClient(lake.mongo.effective_uri)
    try:
        docs = served_collection(client, lake).find({})
        got = {d["_id"]: d["models"]["purchase_30d"].get("reasons") for d in docs}
    finally:
        client.close()
    assert len(got) == len(want) == N
    assert got == want
