"""One writer at a time in the sync: the watermark moves only by compare-and-set from the
version a run read when it started, and a second sync is refused (or waits) while one
holds the ``sync`` lease.

The races are played out deterministically: a hook inside one sync (while it builds,
right before its commit, right before its writes) runs the other sync to the end. The
lease is switched off for the races (``no_lease``), so that the compare-and-set alone
is what keeps MongoDB and the watermark telling the same story. After each race the
collection is compared with ``predictions.current`` at the version the watermark names
(or the watermark was cleared), and one more sync brings it to the latest version.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pyspark.sql import SparkSession

from jobs.platform import LeaseHeldError, table_path
from jobs.sync import SyncConflictError
from jobs.sync import paths as sync_paths
from jobs.sync import run as sync_run
from jobs.sync.run import sync, synced_version
from jobs.sync.state import check_unchanged, commit, invalidate, read_state
from schemas.serving import SYNC_STATE_COLLECTION
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT
from tests.integration.test_sync import (
    assert_mongo_equals_delta,
    collection,
    customer_ids,
    isolated,
    rows,
    upsert_current,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def env(spark: SparkSession, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    own = isolated(settings, tmp_path)
    yield own
    collection(own).database.client.drop_database(own.mongo.database)


@pytest.fixture
def state_db(mongo_uri: str, env: Settings) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        yield client[env.mongo.database]
    finally:
        client.close()


@contextlib.contextmanager
def no_lease(*args: Any, **kwargs: Any) -> Iterator[None]:
    yield None


def docs_by_customer(settings: Settings) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d["models"] for d in collection(settings).find()}


def current_at(spark: SparkSession, settings: Settings, version: int) -> dict[str, dict[str, Any]]:
    """``predictions.current`` at ``version``, shaped as the documents' ``models``."""
    frame = (
        spark.read.format("delta")
        .option("versionAsOf", version)
        .load(table_path(settings, PREDICTIONS_CURRENT))
    )
    out: dict[str, dict[str, Any]] = {}
    for r in frame.collect():
        out.setdefault(r.customer_id, {})[r.model_name] = {
            "score": r.score,
            "model_version": r.model_version,
            "score_date": r.score_date.isoformat(),
            "scored_at": r.scored_at.replace(microsecond=r.scored_at.microsecond // 1000 * 1000),
        }
    return out


def told_apart(spark: SparkSession, settings: Settings) -> str:
    """Why MongoDB and its watermark disagree, or "" when the documents are exactly
    ``predictions.current`` at the watermark's version (or the watermark was cleared)."""
    watermark = synced_version(settings)
    if watermark is None:
        return ""
    expected, docs = current_at(spark, settings, watermark), docs_by_customer(settings)
    wrong = sorted(c for c in expected.keys() | docs.keys() if expected.get(c) != docs.get(c))
    if not wrong:
        return ""
    return f"watermark {watermark}, but {len(wrong)} customers differ from it, e.g. {wrong[:3]}"


def converge(spark: SparkSession, settings: Settings) -> None:
    """One more (ordinary) sync brings MongoDB to the latest version, watermark included."""
    result = sync(spark, settings)
    assert synced_version(settings) == result.delta_version
    assert_mongo_equals_delta(spark, settings)


# The watermark by itself: compare-and-set, never backwards.


def put(
    db: Database[dict[str, Any]],
    version: int,
    *,
    expected: int | None,
    run: str,
    mode: str = "full",
    rewind: bool = False,
) -> None:
    commit(
        db,
        collection="p",
        delta_version=version,
        documents=1,
        mode=mode,
        expected_version=expected,
        run_id=run,
        rewind=rewind,
    )


def test_a_stale_commit_is_refused_and_names_both_versions(
    state_db: Database[dict[str, Any]],
) -> None:
    put(state_db, 3, expected=None, run="a", mode="full")
    put(state_db, 5, expected=3, run="b", mode="incremental")

    with pytest.raises(SyncConflictError) as refused:
        put(state_db, 4, expected=3, run="c", mode="full")
    assert "version 3 (read when this run started)" in str(refused.value)
    assert "found version 5 (by run b, incremental)" in str(refused.value)
    assert read_state(state_db, collection="p").delta_version == 5

    with pytest.raises(SyncConflictError, match="found version 5"):  # a second first load
        put(state_db, 6, expected=None, run="d", mode="full")
    with pytest.raises(SyncConflictError, match=r"moved from version 3 .* to version 5"):
        check_unchanged(state_db, collection="p", expected_version=3, delta_version=6)
    assert read_state(state_db, collection="p").delta_version == 5


def test_the_watermark_never_moves_backwards(state_db: Database[dict[str, Any]]) -> None:
    put(state_db, 7, expected=None, run="a", mode="full")
    with pytest.raises(
        SyncConflictError, match="version 6 is older than the watermark's version 7"
    ):
        put(state_db, 6, expected=7, run="b", mode="full")
    with pytest.raises(SyncConflictError, match="version 6 is older"):
        check_unchanged(state_db, collection="p", expected_version=7, delta_version=6)
    assert read_state(state_db, collection="p").delta_version == 7
    # A recreated table starts its versions again: only then may a full sync rewind.
    put(state_db, 1, expected=7, run="c", mode="full", rewind=True)
    assert read_state(state_db, collection="p").delta_version == 1


def test_a_retried_commit_that_went_through_is_not_a_conflict(
    state_db: Database[dict[str, Any]],
) -> None:
    for _ in range(2):  # the same run, twice (a retry after a lost acknowledgement)
        put(state_db, 2, expected=None, run="a", mode="full")
    for _ in range(2):
        put(state_db, 4, expected=2, run="b", mode="incremental")
    assert read_state(state_db, collection="p").delta_version == 4
    # Still the version a run read, or this run's own commit: nothing to clear.
    assert not invalidate(state_db, collection="p", reason="t", unless_version=4, unless_run="x")
    assert not invalidate(state_db, collection="p", reason="t", unless_version=2, unless_run="b")
    assert read_state(state_db, collection="p").delta_version == 4
    assert invalidate(state_db, collection="p", reason="t", unless_version=2, unless_run="x")
    assert read_state(state_db, collection="p").delta_version is None
    put(state_db, 5, expected=None, run="c", mode="full")
    state = state_db[SYNC_STATE_COLLECTION].find_one({"_id": "p"})
    assert state["delta_version"] == 5 and "invalidated" not in state


# Races between real syncs (the lease off: the compare-and-set alone).


def test_a_full_sync_of_an_older_version_is_not_served_over_a_newer_incremental(
    spark: SparkSession, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = customer_ids(60)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids, version="2", seed=1))  # the full sync's version
    monkeypatch.setattr(sync_run, "hold_lease", no_lease)
    insert_batches = sync_paths.insert_batches
    newer: list[int] = []

    def build_then_let_an_incremental_land(*args: Any, **kwargs: Any) -> None:
        insert_batches(*args, **kwargs)
        if not newer:  # while the full sync builds: a newer version, synced incrementally
            newer.append(upsert_current(spark, env, rows(ids[:10], version="3", seed=2)))
            assert sync(spark, env, mode="incremental").delta_version == newer[0]

    monkeypatch.setattr(sync_paths, "insert_batches", build_then_let_an_incremental_land)
    with pytest.raises(SyncConflictError) as refused:
        sync(spark, env, mode="full")
    assert f"to version {newer[0]} (by run " in str(refused.value)
    assert "was not written" in str(refused.value)

    assert synced_version(env) == newer[0]  # the incremental's version, not moved back
    assert not told_apart(spark, env)
    assert_mongo_equals_delta(spark, env)  # the older build was never pointed to
    converge(spark, env)


def test_a_full_sync_that_loses_the_watermark_before_its_commit_clears_it(
    spark: SparkSession, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = customer_ids(60)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids, version="2", seed=1))
    monkeypatch.setattr(sync_run, "hold_lease", no_lease)
    finish = sync_paths._finish
    newer: list[int] = []

    def let_an_incremental_land_then_commit(*args: Any, **kwargs: Any) -> Any:
        # After the full sync's last check, before its priors and commit: the narrowest
        # window (the incremental's own ``_finish`` comes here too, and just finishes).
        if not newer and kwargs.get("mode") == "full":
            newer.append(upsert_current(spark, env, rows(ids[:10], version="3", seed=2)))
            assert sync(spark, env, mode="incremental").delta_version == newer[0]
        return finish(*args, **kwargs)

    monkeypatch.setattr(sync_paths, "_finish", let_an_incremental_land_then_commit)
    with pytest.raises(SyncConflictError, match="the watermark was cleared"):
        sync(spark, env, mode="full")

    # Its commit was refused, so the pointer never moved: readers keep the collection the
    # incremental wrote. But its priors (older) were written: the watermark is cleared.
    assert docs_by_customer(env) == current_at(spark, env, newer[0])
    assert synced_version(env) is None
    assert not told_apart(spark, env)
    monkeypatch.undo()
    result = sync(spark, env)
    assert (result.mode, result.reason) == ("full", "first load: no watermark")
    converge(spark, env)


def test_two_incrementals_racing_leave_no_document_behind_the_watermark(
    spark: SparkSession, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = customer_ids(60)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids[:10], version="2", seed=1))  # the slow run's version
    monkeypatch.setattr(sync_run, "hold_lease", no_lease)
    upsert_and_delete = sync_paths.upsert_and_delete
    overtaken: list[int] = []

    def overtaken_after_its_check(*args: Any, **kwargs: Any) -> None:
        if not overtaken:  # the slow run passed its check; a newer run overtakes it
            overtaken.append(upsert_current(spark, env, rows(ids[:10], version="3", seed=2)))
            assert sync(spark, env, mode="incremental").delta_version == overtaken[0]
        upsert_and_delete(*args, **kwargs)  # then the slow run writes its older documents

    monkeypatch.setattr(sync_paths, "upsert_and_delete", overtaken_after_its_check)
    with pytest.raises(SyncConflictError, match="the watermark was cleared"):
        sync(spark, env, mode="incremental")

    assert synced_version(env) is None  # ten documents are older than the newer run's version
    assert not told_apart(spark, env)
    monkeypatch.undo()
    converge(spark, env)


def test_a_run_that_fails_after_writing_while_another_moved_the_watermark_clears_it(
    spark: SparkSession, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = customer_ids(60)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids[:10], version="2", seed=1))  # the slow run's version
    monkeypatch.setattr(sync_run, "hold_lease", no_lease)
    upsert_and_delete = sync_paths.upsert_and_delete
    overtaken: list[int] = []

    def overtaken_by_a_full_sync(*args: Any, **kwargs: Any) -> None:
        if not overtaken:  # after its check: a newer version, rebuilt and pointed to
            overtaken.append(upsert_current(spark, env, rows(ids[:10], version="3", seed=2)))
            assert sync(spark, env, mode="full").delta_version == overtaken[0]
        upsert_and_delete(*args, **kwargs)  # its older documents land in the replaced one

    monkeypatch.setattr(sync_paths, "upsert_and_delete", overtaken_by_a_full_sync)
    with pytest.raises(SyncConflictError, match="the watermark was cleared"):
        sync(spark, env, mode="incremental")

    # The slow run wrote into the collection it read the pointer for, which the full sync
    # had replaced: what readers are served is the full sync's version, untouched. Its
    # priors and its refused commit still leave the watermark unknown: cleared.
    assert docs_by_customer(env) == current_at(spark, env, overtaken[0])
    assert synced_version(env) is None
    assert not told_apart(spark, env)
    monkeypatch.undo()
    converge(spark, env)


def test_a_second_sync_is_refused_while_one_holds_the_lease_and_waits_when_told(
    spark: SparkSession, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = customer_ids(60)
    upsert_current(spark, env, rows(ids))
    sync(spark, env)
    upsert_current(spark, env, rows(ids, version="2", seed=1))
    building, release = threading.Event(), threading.Event()
    insert_batches = sync_paths.insert_batches

    def slow_build(*args: Any, **kwargs: Any) -> None:
        insert_batches(*args, **kwargs)
        building.set()
        assert release.wait(120)

    monkeypatch.setattr(sync_paths, "insert_batches", slow_build)
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            outcome["first"] = sync(spark, env, mode="full")
        except BaseException as exc:  # handed to the test
            outcome["first"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert building.wait(120), "the first sync never started building"
        with pytest.raises(LeaseHeldError, match=r"lease 'sync' is held by .* sync \w+ since "):
            sync(spark, env)
        assert release.is_set() is False
        # Told to wait: it runs once the first one is done, from the first one's watermark.
        waiting = env.model_copy(update={"lease": env.lease.model_copy(update={"wait_s": 120})})
        newer = upsert_current(spark, env, rows(ids[:5], version="3", seed=2))
        threading.Timer(1.0, release.set).start()
        started = time.monotonic()
        second = sync(spark, waiting)
        assert time.monotonic() - started >= 0.5
    finally:
        release.set()
        thread.join(120)
    first_result = outcome["first"]
    assert not isinstance(first_result, BaseException), first_result
    assert second.previous_version == first_result.delta_version < second.delta_version == newer
    assert synced_version(env) == newer
    assert_mongo_equals_delta(spark, env)
