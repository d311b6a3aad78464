"""Retention (jobs/platform/retention.py): VACUUM deletes what is out of the windows and
keeps what a rollback and an incremental sync read; leftover serving collections go,
served ones stay; old unregistered MLflow runs lose their artifacts.

Real Spark + Delta, the run's Mongo-wire server (a database per test), the run's MLflow
store (an experiment and model names per test). Time: the first nights of a table are
made ten days old by moving their commits' timestamps (the removals' ``deletionTimestamp``
in the log, the commit time) and their files' modification times back, which is what
VACUUM reads; the later nights are written now.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pytest
from deltalake import DeltaTable as RustDeltaTable
from pyspark.sql import SparkSession

from jobs.ops import rollback
from jobs.platform import SYNC_LEASE, hold_lease
from jobs.platform.lake import ensure_table, table_path
from jobs.platform.registry import configure_mlflow
from jobs.platform.retention import (
    FILE_RETENTION,
    LOG_RETENTION,
    PRUNED_TAG,
    apply_retention,
    prune_collections,
    prune_runs,
)
from jobs.sync import sync
from jobs.sync.paths import build_name
from schemas.models import ModelDefinition
from schemas.serving import PRIORS_COLLECTION_SUFFIX
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT
from tests.integration.test_model_rollback import ids, of_model, register, replace_model, rows
from tests.integration.test_sync import assert_mongo_equals_delta, collection, isolated

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


def age_table(spark: SparkSession, settings: Settings, *, days: int) -> None:
    """Every commit and file of the table so far, ``days`` older: the removals'
    ``deletionTimestamp`` and the commit times in the log, and every file's mtime."""
    root = Path(table_path(settings, PREDICTIONS_CURRENT))
    shift_ms = days * DAY_MS
    for commit in sorted((root / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in commit.read_text().splitlines() if line]
        for action in actions:
            if "remove" in action and action["remove"].get("deletionTimestamp"):
                action["remove"]["deletionTimestamp"] -= shift_ms
            info = action.get("commitInfo")
            if info is not None:
                for key in ("timestamp", "inCommitTimestamp"):
                    if key in info:
                        info[key] -= shift_ms
        commit.write_text("".join(json.dumps(a) + "\n" for a in actions))
        # Hadoop's checksum of the local file would no longer match: it is optional.
        (commit.parent / f".{commit.name}.crc").unlink(missing_ok=True)
    for path in root.rglob("*"):
        if path.is_file():
            stat = path.stat()
            os.utime(path, (stat.st_atime - shift_ms / 1000, stat.st_mtime - shift_ms / 1000))
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # type: ignore[union-attr]


def data_files(settings: Settings) -> set[str]:
    """The table's Parquet files on disk, relative to its folder (counted without Delta)."""
    root = Path(table_path(settings, PREDICTIONS_CURRENT))
    return {
        str(p.relative_to(root)) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts
    }


def files_at(settings: Settings, version: int) -> set[str]:
    """The data files of one version, from its Delta log (delta-rs)."""
    table = RustDeltaTable(table_path(settings, PREDICTIONS_CURRENT), version=version)
    return {unquote(p) for p in pa.table(table.get_add_actions(flatten=True))["path"].to_pylist()}


@pytest.fixture
def own(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Own lake, database, experiment and model names (A primary, B extra)."""
    suffix = uuid.uuid4().hex[:8]
    a, b = f"it_retention_a_{suffix}", f"it_retention_b_{suffix}"
    cfg = isolated(settings, tmp_path)
    model = cfg.model.model_copy(update={"name": a, "additional": [ModelDefinition(name=b)]})
    mlflow_cfg = cfg.mlflow.model_copy(update={"experiment": f"it_retention_{suffix}"})
    cfg = cfg.model_copy(update={"model": model, "mlflow": mlflow_cfg})
    register(cfg, a, 2, champion=2)  # v2 is the bad one
    register(cfg, b, 1, champion=1)
    yield cfg
    collection(cfg).database.client.drop_database(cfg.mongo.database)


@pytest.fixture
def env(spark: SparkSession, own: Settings) -> Settings:
    ensure_table(spark, own, PREDICTIONS_CURRENT)
    return own


@pytest.mark.slow  # a dozen Delta commits, three syncs and a rollback
def test_vacuum_removes_old_files_and_a_sync_and_a_rollback_still_work(
    spark: SparkSession, env: Settings
) -> None:
    a, b = env.model.name, env.model.additional[0].name
    day = [dt.date(1998, 1, d) for d in range(1, 6)]
    # Ten days ago: two nights of both models (the first night's files replaced then).
    replace_model(spark, env, rows(ids(40), model=a, version="1", day=day[0], seed=1))
    first = replace_model(spark, env, rows(ids(8), model=b, version="1", day=day[0], seed=2))
    replace_model(spark, env, rows(ids(40), model=a, version="1", day=day[1], seed=3))
    replace_model(spark, env, rows(ids(8), model=b, version="1", day=day[1], seed=4))
    age_table(spark, env, days=10)
    old = files_at(env, first)  # out of the table for ten days: VACUUM's to delete
    # Now: A's last good night, the bad night of A v2, a sync, then B's next night.
    clean = replace_model(spark, env, rows(ids(40), model=a, version="1", day=day[2], seed=5))
    replace_model(spark, env, rows(ids(41), model=a, version="2", day=day[3], seed=6))
    assert sync(spark, env).mode == "full"
    latest = replace_model(spark, env, rows(ids(8), model=b, version="1", day=day[4], seed=7))
    kept = set().union(*(files_at(env, v) for v in range(clean, latest + 1)))
    before = data_files(env)
    assert old <= before and not old & kept

    result = apply_retention(spark, env)

    after = data_files(env)
    assert before - after == old  # exactly the old nights' files, counted on disk
    assert kept <= after
    [current] = result.tables
    assert (current.table, current.files_removed) == (PREDICTIONS_CURRENT.name, len(old))
    assert current.bytes_removed is not None and current.bytes_removed > 0
    properties = {
        r["key"]: r["value"]
        for r in spark.sql(
            f"SHOW TBLPROPERTIES delta.`{table_path(env, PREDICTIONS_CURRENT)}`"
        ).collect()
    }
    assert properties[FILE_RETENTION] == "interval 192 hours"
    assert properties[LOG_RETENTION] == "interval 30 days"

    # The sync is one night behind: its change feed is still there.
    synced = sync(spark, env)
    assert (synced.mode, synced.changed_customers) == ("incremental", 8), synced.reason
    assert_mongo_equals_delta(spark, env)
    # A rollback of A restores the night before the bad one from current itself.
    rolled = rollback(spark, env, good_version="1", model_name=a)
    assert (rolled.source, rolled.restored_from) == ("current", clean)
    assert of_model(spark, env, a) == of_model(spark, env, a, version=clean)
    assert len(of_model(spark, env, b)) == 8
    assert_mongo_equals_delta(spark, env)


def test_leftover_collections_are_dropped_and_served_ones_kept(
    spark: SparkSession, env: Settings
) -> None:
    replace_model(
        spark,
        env,
        rows(ids(12), model=env.model.name, version="2", day=dt.date(1998, 1, 1), seed=1),
    )
    sync(spark, env)  # the live collection, its priors and its watermark
    live = env.mongo.collection
    # A second deployment serving another collection of the same database (blue/green):
    # its own sync, watermark and priors.
    blue_name = live + "__blue"
    blue = env.model_copy(update={"mongo": env.mongo.model_copy(update={"collection": blue_name})})
    sync(spark, blue)
    db = collection(env).database
    # Builds of full syncs that died before their commit.
    dead = (
        build_name(live, version=99, run_id="dead01"),
        build_name(blue_name, version=99, run_id="dead02"),
    )
    for name in dead:
        db[name].insert_many([{"_id": f"x{i}"} for i in range(3)])
    served = collection(env).name, collection(blue).name  # where the pointers point
    documents = {
        name: db[name].count_documents({})
        for name in (*served, live + PRIORS_COLLECTION_SUFFIX, blue_name + PRIORS_COLLECTION_SUFFIX)
    }
    assert all(documents.values())

    # A sync is running (it holds the lease): its build stays.
    with hold_lease(db, name=SYNC_LEASE, holder="a running sync"):
        held = prune_collections(env, holder="test")
    assert held.dropped == () and held.skipped and "a running sync" in held.skipped
    assert dead[0] in db.list_collection_names()

    pruned = prune_collections(env, holder="test")

    names = set(db.list_collection_names())
    assert set(pruned.dropped) == set(dead)
    assert not names & set(pruned.dropped)
    assert set(pruned.kept) == {*served, blue_name + PRIORS_COLLECTION_SUFFIX}
    for name, count in documents.items():
        assert db[name].count_documents({}) == count, name
    assert_mongo_equals_delta(spark, env)


def test_old_unregistered_runs_lose_their_artifacts(own: Settings, tmp_path: Path) -> None:
    env = own
    client = configure_mlflow(env)
    experiment = client.get_experiment_by_name(env.mlflow.experiment)
    assert experiment is not None
    now = dt.datetime.now(dt.UTC)
    long_ago = int((now - dt.timedelta(days=60)).timestamp() * 1000)
    local = tmp_path / "artifact"
    local.mkdir()
    (local / "note.txt").write_text("x" * 100)

    def run(*, start: int | None) -> tuple[str, Path]:
        created = client.create_run(experiment.experiment_id, start_time=start)
        client.log_artifacts(created.info.run_id, str(local))
        client.set_terminated(created.info.run_id)
        folder = Path(created.info.artifact_uri.removeprefix("file://"))
        assert (folder / "note.txt").exists()
        return created.info.run_id, folder

    old_unregistered, old_folder = run(start=long_ago)
    old_model = client.create_logged_model(experiment.experiment_id, source_run_id=old_unregistered)
    client.log_model_artifacts(old_model.model_id, str(local))
    model_folder = Path(old_model.artifact_location.removeprefix("file://"))
    assert (model_folder / "note.txt").exists()
    old_registered, registered_folder = run(start=long_ago)
    client.create_model_version(env.model.name, source="file:///nowhere", run_id=old_registered)
    _, recent_folder = run(start=None)

    result = prune_runs(env)

    assert result.runs == (old_unregistered,)
    assert result.logged_models == 1
    assert result.bytes_removed == 200
    assert not (old_folder / "note.txt").exists()
    assert not (model_folder / "note.txt").exists()
    assert (registered_folder / "note.txt").exists()
    assert (recent_folder / "note.txt").exists()
    kept = client.get_run(old_unregistered)  # the run itself and its tags stay
    assert PRUNED_TAG in kept.data.tags
    assert prune_runs(env).runs == ()  # once
