"""Sync of predictions.current into the Mongo-wire server: paths, deletes, priors, verification.

Real Spark + Delta (small tables written directly with the current table's schema and
its change data feed on) and a real SecantusDB server over TCP; every test has its
own lake and its own database.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pymongo import MongoClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.platform.lake import ensure_table, read_table, table_exists, table_path, table_version
from jobs.sync import changes as sync_changes
from jobs.sync.changes import _changed_ids_rust, _changed_ids_spark
from jobs.sync.run import sync, synced_version
from jobs.sync.state import active_collection
from jobs.sync.verify import SyncVerificationError
from schemas.serving import PRIORS_COLLECTION_SUFFIX, SYNC_STATE_COLLECTION
from schemas.settings import LakeSettings, Settings
from schemas.tables import PREDICTIONS_CURRENT

pytestmark = pytest.mark.integration

MODEL = "purchase_30d"
OTHER = "churn_90d"


def customer_ids(n: int, *, start: int = 0) -> list[str]:
    return [f"C{i:06d}" for i in range(start, start + n)]


def rows(
    ids: Iterable[str], *, model: str = MODEL, version: str = "1", seed: int = 0
) -> list[tuple[Any, ...]]:
    """predictions.current rows; scored_at has microseconds (BSON keeps milliseconds)."""
    rng = random.Random(seed)
    day = dt.date(1998, 1, 1) + dt.timedelta(days=seed)
    scored_at = dt.datetime(1998, 1, 1, 2, 3, 4, 567891) + dt.timedelta(days=seed)
    return [
        (c, model, version, rng.random(), day, scored_at, "run", 1, None, None, None, None)
        for c in ids
    ]


def upsert_current(spark: SparkSession, settings: Settings, new_rows: list[tuple[Any, ...]]) -> int:
    """MERGE rows into current (a plain append when the table is new: the fast first load)."""
    fresh = not table_exists(spark, settings, PREDICTIONS_CURRENT)
    table = ensure_table(
        spark, settings, PREDICTIONS_CURRENT, properties={"delta.enableChangeDataFeed": "true"}
    )
    source = spark.createDataFrame(new_rows, PREDICTIONS_CURRENT.ddl)
    if fresh:
        source.write.format("delta").mode("append").save(table_path(settings, PREDICTIONS_CURRENT))
        return table_version(spark, settings, PREDICTIONS_CURRENT)
    (
        table.alias("t")
        .merge(source.alias("s"), "t.customer_id = s.customer_id AND t.model_name = s.model_name")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    return table_version(spark, settings, PREDICTIONS_CURRENT)


def delete_customers(spark: SparkSession, settings: Settings, ids: list[str]) -> int:
    DeltaTable.forPath(spark, table_path(settings, PREDICTIONS_CURRENT)).delete(
        F.col("customer_id").isin(ids)
    )
    return table_version(spark, settings, PREDICTIONS_CURRENT)


def isolated(settings: Settings, root: Path, **mongo: Any) -> Settings:
    """The session settings with a lake of its own and a database of its own."""
    options = {"database": "t_" + uuid.uuid4().hex[:12], "batch_size": 40, **mongo}
    return settings.model_copy(
        update={
            "lake": LakeSettings(root=str(root / "lake")),
            "mongo": settings.mongo.model_copy(update=options),
        }
    )


def collection(settings: Settings, suffix: str = "") -> Any:
    """The served collection (the one the sync's pointer names), or ``<collection><suffix>``."""
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo.effective_uri)
    db = client[settings.mongo.database]
    if suffix:
        return db[settings.mongo.collection + suffix]
    return db[active_collection(db, collection=settings.mongo.collection)]


def assert_mongo_equals_delta(spark: SparkSession, settings: Settings) -> None:
    """Every customer of current has exactly its Delta fields in Mongo, and nobody else."""
    expected: dict[str, dict[str, Any]] = {}
    for r in read_table(spark, settings, PREDICTIONS_CURRENT).collect():
        expected.setdefault(r.customer_id, {})[r.model_name] = {
            "score": r.score,
            "model_version": r.model_version,
            "score_date": r.score_date.isoformat(),
            "scored_at": r.scored_at.replace(microsecond=r.scored_at.microsecond // 1000 * 1000),
        }
    docs = {d["_id"]: d for d in collection(settings).find()}
    assert sorted(docs) == sorted(expected)
    for customer, models in expected.items():
        assert docs[customer]["models"] == models, customer
    priors = {d["_id"]: d["prior"] for d in collection(settings, PRIORS_COLLECTION_SUFFIX).find()}
    by_model: dict[str, list[float]] = {}
    for models in expected.values():
        for name, fields in models.items():
            by_model.setdefault(name, []).append(fields["score"])
    assert priors == pytest.approx({m: sum(s) / len(s) for m, s in by_model.items()})


@pytest.fixture
def env(spark: SparkSession, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    own = isolated(settings, tmp_path)
    yield own
    collection(own).database.client.drop_database(own.mongo.database)


def test_first_sync_builds_everything_and_records_the_version(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(120)
    upsert_current(spark, env, rows(ids))
    version = upsert_current(spark, env, rows(ids[:30], model=OTHER, version="7", seed=3))

    result = sync(spark, env)

    assert (result.mode, result.reason) == ("full", "first load: no watermark")
    assert result.verification.ok
    assert result.documents == result.verification.expected_documents == 120
    assert result.verification.sampled > 0
    assert synced_version(env) == result.delta_version == version
    assert_mongo_equals_delta(spark, env)
    assert collection(env).find_one({"_id": ids[0]})["delta_version"] == version
    assert collection(env, "__build").count_documents({}) == 0


def test_few_changes_are_upserted_in_place_and_keep_other_models(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(100)
    upsert_current(spark, env, rows(ids))
    upsert_current(spark, env, rows(ids[:40], model=OTHER, seed=5))
    first = sync(spark, env)
    untouched = collection(env).find_one({"_id": ids[50]})

    version = upsert_current(spark, env, rows(ids[:10], version="2", seed=9))
    result = sync(spark, env)

    assert result.mode == "incremental"
    assert result.changed_customers == 10 and result.upserted == 10 and result.deleted == 0
    assert result.previous_version == first.delta_version
    assert result.verification.ok and result.verification.count_method == "tally"
    assert synced_version(env) == version
    assert_mongo_equals_delta(spark, env)
    changed = collection(env).find_one({"_id": ids[0]})
    assert set(changed["models"]) == {MODEL, OTHER}
    assert changed["models"][MODEL]["model_version"] == "2"
    assert changed["delta_version"] == version
    assert collection(env).find_one({"_id": ids[50]}) == untouched


def test_customers_deleted_in_delta_lose_their_documents(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(100)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(customer_ids(3, start=500), seed=2))  # new customers too
    version = delete_customers(spark, env, ids[:7])

    result = sync(spark, env)

    assert result.mode == "incremental"
    assert result.deleted == 7 and result.upserted == 3
    assert result.documents == 96
    assert collection(env).count_documents({"_id": {"$in": ids[:7]}}) == 0
    assert synced_version(env) == version
    assert_mongo_equals_delta(spark, env)


def test_the_change_feed_read_by_delta_rs_names_the_customers_spark_does(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(60)
    since = upsert_current(spark, env, rows(ids))
    upsert_current(spark, env, rows(ids[:5], version="2", seed=3))  # MERGE: updates
    upsert_current(spark, env, rows(customer_ids(3, start=100), seed=4))  # MERGE: inserts
    until = delete_customers(spark, env, ids[10:12])

    by_rust = _changed_ids_rust(env, since=since, until=until)
    by_spark = _changed_ids_spark(spark, env, since=since, until=until, limit=None)

    expected = ids[:5] + customer_ids(3, start=100) + ids[10:12]
    assert sorted(by_rust) == sorted(by_spark) == sorted(expected)


def test_spark_reads_the_change_feed_when_delta_rs_cannot(
    spark: SparkSession, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = customer_ids(50)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids[:4], version="2", seed=5))
    version = delete_customers(spark, env, ids[-2:])

    def refuse(*args: Any, **kwargs: Any) -> list[str]:
        raise OSError("delta-rs cannot reach the table")

    monkeypatch.setattr(sync_changes, "_changed_ids_rust", refuse)
    result = sync(spark, env)

    assert result.mode == "incremental" and result.changed_customers == 6
    assert (result.upserted, result.deleted, result.documents) == (4, 2, 48)
    assert synced_version(env) == version
    assert_mongo_equals_delta(spark, env)


def test_most_customers_changed_rebuilds_and_swaps(spark: SparkSession, env: Settings) -> None:
    ids = customer_ids(80)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids[:60], version="2", seed=4))

    result = sync(spark, env)

    assert result.mode == "full"
    assert result.reason == "more than 24 customers changed (> 30% of 80)"
    assert_mongo_equals_delta(spark, env)


def test_nothing_changed_writes_nothing_and_still_verifies(
    spark: SparkSession, env: Settings
) -> None:
    upsert_current(spark, env, rows(customer_ids(30)))
    first = sync(spark, env)

    again = sync(spark, env)

    assert again.mode == "incremental" and again.upserted == 0 and again.batches == 0
    assert again.delta_version == first.delta_version
    assert again.verification.ok


def test_unreadable_change_feed_recovers_with_a_full_build(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(50)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    path = table_path(env, PREDICTIONS_CURRENT)
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = false)")
    upsert_current(spark, env, rows(ids[:2], version="3", seed=6))

    result = sync(spark, env)

    assert result.mode == "full"
    assert result.reason.startswith("recovery: change data feed")
    assert_mongo_equals_delta(spark, env)


def test_full_on_demand_and_a_failed_verification_keeps_the_watermark(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(40)  # small: the verification sample covers every customer
    upsert_current(spark, env, rows(ids))
    synced = sync(spark, env).delta_version
    collection(env).update_one({"_id": ids[5]}, {"$set": {f"models.{MODEL}.score": 2.0}})
    upsert_current(spark, env, rows(ids[:1], version="2", seed=8))

    with pytest.raises(SyncVerificationError, match=rf"{ids[5]}/{MODEL}\.score"):
        sync(spark, env)
    assert synced_version(env) == synced

    repaired = sync(spark, env, mode="full")
    assert repaired.mode == "full" and repaired.reason == "requested"
    assert_mongo_equals_delta(spark, env)
    state = collection(env).database[SYNC_STATE_COLLECTION].find_one({"_id": env.mongo.collection})
    assert state["delta_version"] == repaired.delta_version and state["documents"] == 40
