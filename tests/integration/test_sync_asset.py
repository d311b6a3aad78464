"""The Dagster asset: the sync's verification lands in the asset metadata; a failed one fails it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import materialize
from pyspark.sql import SparkSession

from jobs.sync.run import synced_version
from pipelines.keys import MONGO_PREDICTIONS_KEY
from pipelines.partitions import score_date_partitions
from pipelines.resources import LakescoreResource
from pipelines.serving.assets import build_serving_assets
from schemas.settings import Settings, get_settings
from tests.integration.test_sync import (
    MODEL,
    collection,
    customer_ids,
    isolated,
    rows,
    upsert_current,
)

pytestmark = pytest.mark.integration


def test_asset_metadata_carries_the_verification_and_a_failure_fails_the_asset(
    spark: SparkSession, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = isolated(settings, tmp_path)
    monkeypatch.setenv("LAKESCORE_MONGO__DATABASE", own.mongo.database)
    monkeypatch.setenv("LAKESCORE_LAKE__ROOT", own.lake.root)
    get_settings.cache_clear()
    try:
        ids = customer_ids(40)
        upsert_current(spark, own, rows(ids))
        assets = build_serving_assets(score_date_partitions(settings))
        resources = {"lakescore": LakescoreResource()}

        ok = materialize(assets, resources=resources, partition_key="1998-01-01")

        [event] = ok.asset_materializations_for_node(MONGO_PREDICTIONS_KEY.to_python_identifier())
        meta = {k: v.value for k, v in event.metadata.items()}
        assert meta["mode"] == "full" and meta["verified"] is True
        assert meta["documents"] == meta["expected_documents"] == 40
        assert meta["mismatches"] == 0 and meta["verified_sample"] == 40
        synced = synced_version(own)

        collection(own).update_one({"_id": ids[3]}, {"$set": {f"models.{MODEL}.score": -1.0}})
        upsert_current(spark, own, rows(ids[:1], version="2", seed=4))
        failed = materialize(
            assets, resources=resources, partition_key="1998-01-01", raise_on_error=False
        )

        assert not failed.success
        assert synced_version(own) == synced
    finally:
        get_settings.cache_clear()
        collection(own).database.client.drop_database(own.mongo.database)
