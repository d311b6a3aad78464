"""Sync under faults: failed and retried writes (configureFailPoint), a killed sync process,
and readers during a full resync. A server of its own runs with --enable-test-commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pyspark.sql import SparkSession

from jobs.platform.local_mongo import ping, server_binary
from jobs.sync.paths import is_build_of
from jobs.sync.run import sync, synced_version
from jobs.sync.writes import BatchWriteError
from schemas.settings import Settings
from tests.conftest import free_port
from tests.integration.test_sync import (
    assert_mongo_equals_delta,
    collection,
    customer_ids,
    isolated,
    rows,
    upsert_current,
)
from tests.reliability.counting import business_keys, duplicated, lost_rows

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fault_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB server with test commands (configureFailPoint) enabled."""
    port = free_port()
    log = (tmp_path_factory.mktemp("faults") / "mongo.log").open("wb")
    args = ["--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"]
    proc = subprocess.Popen(
        [server_binary(), *args, "--log-level", "WARNING", "--enable-test-commands"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"mongodb://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while not ping(uri):
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def failpoint(uri: str, mode: Any, **data: Any) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        client.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)
    finally:
        client.close()


@pytest.fixture
def env(settings: Settings, tmp_path: Path, fault_uri: str) -> Iterator[Settings]:
    own = isolated(
        settings,
        tmp_path,
        uri=fault_uri,
        batch_size=20,
        retry_attempts=4,
        retry_initial_backoff_s=0.1,
        retry_max_backoff_s=0.5,
    )
    yield own
    failpoint(fault_uri, "off")
    collection(own).database.client.drop_database(own.mongo.database)


def test_watermark_never_advances_past_a_failed_write(spark: SparkSession, env: Settings) -> None:
    ids = customer_ids(100)
    first = upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids[:30], version="2", seed=1))
    uri = env.mongo.uri
    # The run marker (an update) and batch 0 go through, batch 1 fails for good.
    failpoint(uri, {"skip": 2, "times": 1}, failCommands=["update"], errorCode=2)

    with pytest.raises(
        BatchWriteError, match=r"batch 1 \(operations 20\.\.29.*\.predictions__v\d+_\w+ failed"
    ):
        sync(spark, env)
    assert synced_version(env) == first
    assert collection(env).count_documents({"delta_version": {"$gt": first}}) == 20

    failpoint(uri, "alwaysOn", failCommands=["insert"], errorCode=2)
    with pytest.raises(BatchWriteError, match=r"batch 0 .*predictions__v\d+_\w+ failed"):
        sync(spark, env, mode="full")
    assert synced_version(env) == first
    assert (
        collection(env).count_documents({}) == 100
    )  # the pointer still names the served collection

    failpoint(uri, "off")
    result = sync(spark, env)
    assert result.mode == "incremental"
    assert result.verification.count_method == "counted"  # an interrupted run came before
    assert synced_version(env) == result.delta_version > first
    assert_mongo_equals_delta(spark, env)


def test_transient_errors_are_retried(spark: SparkSession, env: Settings) -> None:
    ids = customer_ids(60)
    upsert_current(spark, env, rows(ids))
    # 89 NetworkTimeout: retryable; the driver retries once itself, then tenacity takes over.
    failpoint(env.mongo.uri, {"times": 3}, failCommands=["insert"], errorCode=89)
    first = sync(spark, env)
    upsert_current(spark, env, rows(ids[:10], version="2", seed=2))
    # The run marker (an update) goes through; batch 0 loses its connection twice.
    failpoint(env.mongo.uri, {"skip": 1, "times": 2}, failCommands=["update"], closeConnection=True)

    second = sync(spark, env)

    assert first.retried_batches >= 1 and second.retried_batches >= 1
    assert second.mode == "incremental"
    assert_mongo_equals_delta(spark, env)


@pytest.mark.reliability
@pytest.mark.parametrize("path", ["incremental", pytest.param("full", marks=pytest.mark.slow)])
def test_a_killed_sync_rerun_converges(
    spark: SparkSession,
    env: Settings,
    test_env: dict[str, str],
    path: str,
    reliability_report: Any,
) -> None:
    ids = customer_ids(400)
    before, changed = rows(ids), rows(ids[:300], version="2", seed=3)
    first = upsert_current(spark, env, before)
    sync(spark, env)
    target = upsert_current(spark, env, changed)
    command = "update" if path == "incremental" else "insert"
    failpoint(
        env.mongo.uri, "alwaysOn", failCommands=[command], blockConnection=True, blockTimeMS=40
    )
    child_env = {
        **os.environ,
        **test_env,
        "MONGO_URI": env.mongo.uri,
        "LAKESCORE_LAKE__ROOT": env.lake.root,
        "LAKESCORE_MONGO__DATABASE": env.mongo.database,
        "LAKESCORE_SPARK__MASTER": "local[1]",
    }
    code = (
        "from jobs.platform.spark import get_spark; from jobs.sync.run import sync; "
        "from schemas.settings import get_settings; s = get_settings(); "
        f"sync(get_spark(s), s, mode={path!r}, batch_size=10)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=child_env)
    served = collection(env)
    try:
        deadline = time.monotonic() + 300
        while _written(env, served, path, target) < 30:
            assert proc.poll() is None, "the sync finished before it could be killed"
            assert time.monotonic() < deadline, "the sync wrote nothing in time"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    failpoint(env.mongo.uri, "off")
    assert synced_version(env) == first
    halfway = collection(env).count_documents({"delta_version": target})
    assert halfway < 300
    if path == "full":
        assert halfway == 0  # nothing was swapped in

    result = sync(spark, env)

    # Every row of Delta (customer, model -> version, score), against the documents' fields.
    expected = {(r[0], r[1]): {"model_version": r[2], "score": r[3]} for r in before + changed}
    docs = list(collection(env).find())
    lost, duplicates = lost_rows(expected, docs), duplicated(business_keys(docs))
    reliability_report.record(
        scenario="3 Mongo sync SIGKILLed mid-write",
        load=f"{len(ids)} customers, 300 changed",
        faults=1,
        rows_lost=lost,
        rows_duplicated=duplicates,
        detail=f"{path}: {halfway} of 300 changes written when killed, watermark held at {first}",
    )
    assert lost == duplicates == 0
    assert result.delta_version == target and result.verification.ok
    assert synced_version(env) == target
    assert_mongo_equals_delta(spark, env)


def _written(settings: Settings, served: Any, path: str, target: int) -> int:
    """Documents of the changed version written so far: into the served collection
    (incremental) or into the full sync's new collection (not yet served)."""
    if path == "incremental":
        return int(served.count_documents({"delta_version": target}))
    db = served.database
    builds = [
        n
        for n in db.list_collection_names()
        if is_build_of(settings.mongo.collection, n) and n != served.name
    ]
    return sum(int(db[n].count_documents({})) for n in builds)


@pytest.mark.reliability
def test_readers_never_miss_a_customer_during_a_full_resync(
    spark: SparkSession, settings: Settings, tmp_path: Path, reliability_report: Any
) -> None:
    env = isolated(settings, tmp_path, batch_size=50)
    ids = customer_ids(500)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids, version="2", seed=5))
    lookups, missing = [0], [0]
    stop = threading.Event()

    def read() -> None:
        coll = collection(env)
        while not stop.is_set():
            for customer in ids[::7]:
                lookups[0] += 1
                missing[0] += coll.find_one({"_id": customer}) is None

    reader = threading.Thread(target=read)
    reader.start()
    try:
        results = [sync(spark, env, mode="full") for _ in range(2)]
    finally:
        stop.set()
        reader.join(timeout=30)
    collection(env).database.client.drop_database(env.mongo.database)

    reliability_report.record(
        scenario="4 full resync under readers",
        load=f"{lookups[0]} lookups during 2 swaps",
        faults=2,
        rows_lost=missing[0],
    )
    assert [r.mode for r in results] == ["full", "full"]
    assert lookups[0] > 100
    assert missing[0] == 0
