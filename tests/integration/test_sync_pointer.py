"""Blue/green by pointer: a full sync writes a collection of its own and moves the watermark
document's pointer to it in one write. Readers following the pointer (the API's own store)
never miss a customer nor mix two versions; replaced collections are dropped only after
the grace period; a SIGKILL at any point leaves a consistent pointer and a next run that
converges; a deployment synced before pointers migrates by itself. Real Spark + Delta and
a real Mongo-wire server over TCP."""

from __future__ import annotations

import asyncio
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
from pyspark.sql import SparkSession

from api.prediction_store import MongoPredictionStore
from jobs.sync.paths import is_build_of
from jobs.sync.run import sync, synced_version
from jobs.sync.state import read_state
from schemas.serving import SYNC_STATE_COLLECTION
from schemas.settings import Settings
from tests.integration.test_sync import (
    assert_mongo_equals_delta,
    collection,
    customer_ids,
    isolated,
    rows,
    upsert_current,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(spark: SparkSession, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    own = isolated(settings, tmp_path)
    yield own
    collection(own).database.client.drop_database(own.mongo.database)


def with_mongo(settings: Settings, **mongo: Any) -> Settings:
    return settings.model_copy(update={"mongo": settings.mongo.model_copy(update=mongo)})


def builds(settings: Settings) -> set[str]:
    """Every collection a full sync of the configured collection wrote that still exists."""
    db = collection(settings).database
    return {n for n in db.list_collection_names() if is_build_of(settings.mongo.collection, n)}


def served(settings: Settings) -> str:
    return str(collection(settings).name)


def test_a_full_sync_serves_a_new_collection_and_keeps_the_one_it_replaced(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(60)
    upsert_current(spark, env, rows(ids))
    first = sync(spark, env)
    one = served(env)
    upsert_current(spark, env, rows(ids, version="2", seed=1))
    second = sync(spark, env, mode="full")
    two = served(env)

    assert first.mode == second.mode == "full"
    assert one != two and {one, two} == builds(env)  # the replaced one is kept (keep 1)
    assert is_build_of(env.mongo.collection, two)
    db = collection(env).database
    assert env.mongo.collection not in db.list_collection_names()  # nothing renamed into place
    state = read_state(db, collection=env.mongo.collection)
    assert state.active == two and state.delta_version == second.delta_version
    assert [r.name for r in state.retired] == [one]
    assert db[one].count_documents({"models.purchase_30d.model_version": "1"}) == 60
    assert_mongo_equals_delta(spark, env)


def test_replaced_collections_are_dropped_only_after_the_grace_period(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(30)
    upsert_current(spark, env, rows(ids))
    long_grace = with_mongo(env, keep_collections=0, drop_grace_s=3600.0)
    names = []
    for seed in range(3):
        upsert_current(spark, env, rows(ids, version=str(seed + 2), seed=seed + 1))
        sync(spark, long_grace, mode="full")
        names.append(served(env))
    # Nothing kept on purpose (keep 0), but nothing is past its grace either.
    assert builds(env) == set(names) and len(names) == 3

    short_grace = with_mongo(env, keep_collections=0, drop_grace_s=0.5)
    time.sleep(0.6)
    upsert_current(spark, env, rows(ids, version="9", seed=9))
    sync(spark, short_grace, mode="full")
    newest = served(env)
    # Replaced more than 0.5 s ago: dropped. Replaced by this very sync: inside its grace.
    assert builds(env) == {names[-1], newest}
    state = read_state(collection(env).database, collection=env.mongo.collection)
    assert [r.name for r in state.retired] == [names[-1]]

    time.sleep(0.6)
    upsert_current(spark, env, rows(ids, version="10", seed=10))
    sync(spark, with_mongo(env, keep_collections=1, drop_grace_s=0.5), mode="full")
    # Keep 1: the collection just replaced stays, whatever its age; the one before goes.
    assert builds(env) == {newest, served(env)}
    assert_mongo_equals_delta(spark, env)


def test_readers_following_the_pointer_never_miss_nor_mix_versions(
    spark: SparkSession, env: Settings
) -> None:
    """The API's store polls the pointer while full syncs land: every batch answer holds
    every customer asked for, all of one Delta version."""
    ids = customer_ids(300)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    answers: list[tuple[int, set[int]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    async def read() -> None:
        store = MongoPredictionStore(env.mongo)
        try:
            while not stop.is_set():
                await store.watermark()  # the poll: follows the pointer
                for start in range(0, len(ids), 50):
                    docs = await store.get_many(ids[start : start + 50])
                    answers.append((len(docs), {int(d["delta_version"]) for d in docs.values()}))
        finally:
            await store.close()

    def reader() -> None:
        try:
            asyncio.run(read())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        versions = []
        for seed in range(3):
            upsert_current(spark, env, rows(ids, version=str(seed + 2), seed=seed + 1))
            versions.append(sync(spark, env, mode="full").delta_version)
        time.sleep(0.3)  # a last poll after the last commit
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert len(answers) > 20
    assert all(found == 50 for found, _ in answers), "a reader missed a customer"
    assert all(len(seen) == 1 for _, seen in answers), "an answer mixed two versions"
    seen_versions = set().union(*(seen for _, seen in answers))
    assert versions[-1] in seen_versions  # the readers did switch to the last collection


def test_a_deployment_synced_before_pointers_migrates_on_its_first_run(
    spark: SparkSession, env: Settings
) -> None:
    ids = customer_ids(40)
    version = upsert_current(spark, env, rows(ids))
    sync(spark, env)
    # Today's layout before pointers: one collection named like the setting, a watermark
    # without ``active``.
    db = collection(env).database
    db.client.admin.command(
        "renameCollection", f"{db.name}.{served(env)}", to=f"{db.name}.{env.mongo.collection}"
    )
    db[SYNC_STATE_COLLECTION].update_one(
        {"_id": env.mongo.collection}, {"$unset": {"active": "", "retired": ""}}
    )
    assert served(env) == env.mongo.collection
    legacy_store = MongoPredictionStore(env.mongo)

    async def legacy_answer() -> Any:
        try:
            mark = await legacy_store.watermark()
            return mark, await legacy_store.get(ids[0])
        finally:
            await legacy_store.close()

    mark, doc = asyncio.run(legacy_answer())
    assert mark[3] == env.mongo.collection and doc is not None  # the API reads the old layout

    result = sync(spark, with_mongo(env, drop_grace_s=0.5, keep_collections=0))

    assert result.mode == "full" and "migrating" in result.reason
    assert result.delta_version == version and synced_version(env) == version
    assert is_build_of(env.mongo.collection, served(env))
    assert_mongo_equals_delta(spark, env)
    # The old collection is retired like any replaced one, then dropped after its grace
    # by the next sync, here an incremental one, which writes into the new collection.
    assert env.mongo.collection in db.list_collection_names()
    time.sleep(0.6)
    upsert_current(spark, env, rows(ids[:4], version="2", seed=2))
    assert sync(spark, with_mongo(env, drop_grace_s=0.5, keep_collections=0)).mode == "incremental"
    assert env.mongo.collection not in db.list_collection_names()
    assert_mongo_equals_delta(spark, env)


# ------------------------------------------------------------------ SIGKILL at each point

# The child runs the real sync with one function wrapped so that the process SIGKILLs
# itself at that point: no finally block, no lease release, no cleanup runs.
KILL_AT = {
    # after two batches of the new collection were written
    "build": """
real = P.insert_batches
def insert_batches(coll, batches, **kw):
    def two():
        for i, batch in enumerate(batches):
            if i == 2:
                die()
            yield batch
    real(coll, two(), **kw)
P.insert_batches = insert_batches
""",
    # the new collection is complete and verified, the pointer not yet moved
    "verified": """
P._still_ours = lambda *a, **k: die()
""",
    # the pointer moved (the commit returned), nothing after it ran
    "pointer": """
real = P.commit
def commit(*a, **k):
    real(*a, **k)
    die()
P.commit = commit
""",
    # a replaced collection was dropped, the pointer's list of them not yet updated
    "drop": """
from pymongo.database import Database
real = Database.drop_collection
def drop_collection(self, *a, **k):
    real(self, *a, **k)
    die()
Database.drop_collection = drop_collection
""",
}


@pytest.mark.parametrize("point", sorted(KILL_AT))
def test_a_sync_killed_at_any_point_leaves_a_consistent_pointer_and_the_next_run_converges(
    spark: SparkSession, env: Settings, test_env: dict[str, str], point: str
) -> None:
    fast = with_mongo(env, keep_collections=0, drop_grace_s=0.01)
    ids = customer_ids(200)
    upsert_current(spark, env, rows(ids))
    sync(spark, with_mongo(env, keep_collections=0, drop_grace_s=3600.0))
    old = upsert_current(spark, env, rows(ids, version="2", seed=1))
    # One replaced collection, kept now (long grace), long past the child's grace.
    sync(spark, with_mongo(env, keep_collections=0, drop_grace_s=3600.0), mode="full")
    before = served(env)
    assert len(builds(env)) == 2
    target = upsert_current(spark, env, rows(ids, version="3", seed=2))

    child_env = {
        **os.environ,
        **test_env,
        "LAKESCORE_LAKE__ROOT": env.lake.root,
        "LAKESCORE_MONGO__DATABASE": env.mongo.database,
        "LAKESCORE_MONGO__BATCH_SIZE": "40",
        "LAKESCORE_MONGO__KEEP_COLLECTIONS": "0",
        "LAKESCORE_MONGO__DROP_GRACE_S": "0.01",
        "LAKESCORE_API__WATERMARK_POLL_S": "0.005",
        "LAKESCORE_SPARK__MASTER": "local[1]",
    }
    code = "\n".join(
        [
            "import os, signal",
            "import jobs.sync.paths as P",
            "def die():",
            "    os.kill(os.getpid(), signal.SIGKILL)",
            KILL_AT[point],
            "from jobs.platform.spark import get_spark",
            "from jobs.sync.run import sync",
            "from schemas.settings import get_settings",
            "s = get_settings()",
            "sync(get_spark(s), s, mode='full')",
        ]
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed at {point!r}"

    # The pointer names a whole collection: the old one before the commit, the new after.
    moved = point in ("pointer", "drop")
    assert synced_version(env) == (target if moved else old)
    assert (served(env) != before) is moved
    expected_version = "3" if moved else "2"
    live = collection(env)
    assert live.count_documents({}) == len(ids)
    assert live.count_documents({"models.purchase_30d.model_version": expected_version}) == len(ids)

    result = sync(spark, fast)

    assert result.delta_version == target and result.verification.ok
    assert synced_version(env) == target
    assert_mongo_equals_delta(spark, env)
    # Nothing is left behind: no dead run's collection, nothing past its grace (keep 0;
    # the collection this run replaced, if it replaced one, is inside its grace).
    state = read_state(collection(env).database, collection=env.mongo.collection)
    assert builds(env) == {served(env), *(r.name for r in state.retired)}
    assert len(state.retired) <= 1
