"""Rollback of one model: only its rows of predictions.current change, the others stay byte for byte.

Real Spark + Delta (a small current table with two models, written directly), a real
MLflow registry (the run's SQLite store, model names of this module's own) and the
run's Mongo-wire server (a database per test).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from typer.testing import CliRunner

from cli.main import app
from jobs.ops import RollbackError, rollback
from jobs.platform import NIGHT_LEASE, leased
from jobs.platform.lake import (
    ensure_table,
    file_statistics,
    read_table,
    table_path,
    table_version,
)
from jobs.platform.registry import CHAMPION, configure_mlflow, version_by_alias
from jobs.sync import sync_full
from schemas.models import ModelDefinition
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.integration.test_sync import assert_mongo_equals_delta, collection, isolated

pytestmark = pytest.mark.integration


def ids(n: int) -> list[str]:
    return [f"C{i:05d}" for i in range(n)]


def rows(
    customers: list[str], *, model: str, version: str, day: dt.date, seed: int
) -> list[tuple[Any, ...]]:
    """predictions.current rows of one model scored on ``day``."""
    rng = random.Random(seed)
    scored_at = dt.datetime.combine(day, dt.time(2, 3, 4, 567891))
    return [
        (
            c,
            model,
            version,
            rng.random(),
            day,
            scored_at,
            f"run-{seed}",
            seed,
            None,
            None,
            None,
            None,
        )
        for c in customers
    ]


def replace_model(spark: SparkSession, settings: Settings, new: list[tuple[Any, ...]]) -> int:
    """A night of one model: its partition of current rewritten (as scoring does)."""
    model = new[0][1]
    (
        spark.createDataFrame(new, PREDICTIONS_CURRENT.ddl)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"model_name = '{model}'")
        .save(table_path(settings, PREDICTIONS_CURRENT))
    )
    return table_version(spark, settings, PREDICTIONS_CURRENT)


def of_model(
    spark: SparkSession, settings: Settings, model: str, *, version: int | None = None
) -> list[tuple[Any, ...]]:
    frame = read_table(spark, settings, PREDICTIONS_CURRENT, version=version)
    return sorted(tuple(r) for r in frame.where(F.col("model_name") == model).collect())


def files_of(settings: Settings, model: str) -> list[str]:
    stats = file_statistics(settings, PREDICTIONS_CURRENT)
    assert stats is not None
    return sorted(f["path"] for f in stats if f["partition.model_name"] == model)


def register(settings: Settings, name: str, versions: int, *, champion: int) -> None:
    """``versions`` versions of ``name`` in the registry (no artifacts needed), one champion."""
    client = configure_mlflow(settings)
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, source=f"file:///nowhere/{name}", run_id=None)
    client.set_registered_model_alias(name, CHAMPION, str(champion))


@pytest.fixture
def env(spark: SparkSession, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Own lake, own database, two configured models of its own names (A primary, B extra)."""
    suffix = uuid.uuid4().hex[:8]
    a, b = f"it_rollback_a_{suffix}", f"it_rollback_b_{suffix}"
    own = isolated(settings, tmp_path)
    model = own.model.model_copy(update={"name": a, "additional": [ModelDefinition(name=b)]})
    own = own.model_copy(update={"model": model})
    register(own, a, 2, champion=2)  # v2 is the bad one
    register(own, b, 1, champion=1)
    ensure_table(spark, own, PREDICTIONS_CURRENT, properties={"delta.enableChangeDataFeed": "true"})
    yield own
    collection(own).database.client.drop_database(own.mongo.database)


def models(settings: Settings) -> tuple[str, str]:
    return settings.model.name, settings.model.additional[0].name


def test_rollback_restores_only_that_models_rows(spark: SparkSession, env: Settings) -> None:
    a, b = models(env)
    d1, d2, d3 = dt.date(1998, 1, 1), dt.date(1998, 1, 2), dt.date(1998, 1, 3)
    replace_model(spark, env, rows(ids(40), model=a, version="1", day=d1, seed=1))
    replace_model(spark, env, rows(ids(30), model=b, version="1", day=d1, seed=2))
    clean = replace_model(spark, env, rows(ids(30), model=b, version="1", day=d2, seed=3))
    # The bad night of A (one customer more), then B's next night: both after ``clean``.
    replace_model(spark, env, rows(ids(41), model=a, version="2", day=d3, seed=4))
    replace_model(spark, env, rows(ids(30), model=b, version="1", day=d3, seed=5))
    sync_full(spark, env)
    b_before, b_files = of_model(spark, env, b), files_of(env, b)
    before = table_version(spark, env, PREDICTIONS_CURRENT)

    result = rollback(spark, env, good_version="1", model_name=a)

    assert of_model(spark, env, b) == b_before  # same rows, same values
    assert files_of(env, b) == b_files  # B's files not even rewritten
    assert of_model(spark, env, a) == of_model(spark, env, a, version=clean)
    assert {r[2] for r in of_model(spark, env, a)} == {"1"}
    assert table_version(spark, env, PREDICTIONS_CURRENT) == before + 1  # one commit
    assert (result.source, result.restored_from, result.rows_restored) == ("current", clean, 40)
    assert (result.model_name, result.bad_version, result.good_version) == (a, "2", "1")
    assert result.model_versions == ("1",)
    assert result.documents_synced == 40
    champion = version_by_alias(configure_mlflow(env), model_name=a, alias=CHAMPION)
    assert champion is not None and str(champion.version) == "1"
    assert_mongo_equals_delta(spark, env)


def test_rollback_of_the_second_model_leaves_the_primary_alone(
    spark: SparkSession, env: Settings
) -> None:
    a, b = models(env)
    client = configure_mlflow(env)
    client.create_model_version(b, source=f"file:///nowhere/{b}", run_id=None)
    client.set_registered_model_alias(b, CHAMPION, "2")
    d1, d2 = dt.date(1998, 1, 1), dt.date(1998, 1, 2)
    # A's champion is v2 too: its rows are there before B's first night, in every version.
    replace_model(spark, env, rows(ids(25), model=a, version="2", day=d1, seed=2))
    clean = replace_model(spark, env, rows(ids(20), model=b, version="1", day=d1, seed=1))
    replace_model(spark, env, rows(ids(20), model=b, version="2", day=d2, seed=3))
    replace_model(spark, env, rows(ids(25), model=a, version="2", day=d2, seed=4))
    a_before, a_files = of_model(spark, env, a), files_of(env, a)

    result = rollback(spark, env, good_version="1", model_name=b)

    assert of_model(spark, env, a) == a_before
    assert files_of(env, a) == a_files
    assert of_model(spark, env, b) == of_model(spark, env, b, version=clean)
    assert (result.source, result.rows_restored) == ("current", 20)
    champion = version_by_alias(client, model_name=a, alias=CHAMPION)
    assert champion is not None and str(champion.version) == "2"  # A's alias not moved
    assert_mongo_equals_delta(spark, env)


def test_without_a_clean_version_the_rows_come_from_history(
    spark: SparkSession, env: Settings
) -> None:
    """A's only rows in current are the bad version's: the champion rows of v1 in
    history are the restore, the newest score date per customer."""
    a, b = models(env)
    d1, d2, d3 = dt.date(1998, 1, 1), dt.date(1998, 1, 2), dt.date(1998, 1, 3)
    replace_model(spark, env, rows(ids(10), model=b, version="1", day=d1, seed=1))
    replace_model(spark, env, rows(ids(12), model=a, version="2", day=d3, seed=2))
    b_before = of_model(spark, env, b)

    def history(new: list[tuple[Any, ...]], role: str) -> list[tuple[Any, ...]]:
        return [(*r[:3], role, *r[3:10]) for r in new]  # history has no shadow columns

    v1_old = rows(ids(12), model=a, version="1", day=d1, seed=3)
    v1_new = rows(ids(8), model=a, version="1", day=d2, seed=4)  # 4 customers not scored on d2
    shadow = rows(ids(12), model=a, version="2", day=d2, seed=5)
    bad = rows(ids(12), model=a, version="2", day=d3, seed=2)
    other = rows(ids(10), model=b, version="1", day=d2, seed=6)
    ensure_table(spark, env, PREDICTIONS_HISTORY)
    spark.createDataFrame(
        history(v1_old + v1_new + bad + other, CHAMPION) + history(shadow, "challenger"),
        PREDICTIONS_HISTORY.ddl,
    ).write.format("delta").mode("append").save(table_path(env, PREDICTIONS_HISTORY))

    result = rollback(spark, env, good_version="1", model_name=a)

    expected = sorted(v1_new + v1_old[8:])
    assert of_model(spark, env, a) == expected
    assert of_model(spark, env, b) == b_before
    assert (result.source, result.restored_from, result.rows_restored) == ("history", None, 12)
    assert_mongo_equals_delta(spark, env)


def test_nothing_to_restore_is_refused_and_changes_nothing(
    spark: SparkSession, env: Settings
) -> None:
    a, b = models(env)
    replace_model(spark, env, rows(ids(10), model=b, version="1", day=dt.date(1998, 1, 1), seed=1))
    replace_model(spark, env, rows(ids(5), model=a, version="2", day=dt.date(1998, 1, 2), seed=2))
    before = table_version(spark, env, PREDICTIONS_CURRENT)
    with pytest.raises(RollbackError, match="nothing to restore"):
        rollback(spark, env, good_version="1", model_name=a)
    assert table_version(spark, env, PREDICTIONS_CURRENT) == before
    champion = version_by_alias(configure_mlflow(env), model_name=a, alias=CHAMPION)
    assert champion is not None and str(champion.version) == "2"


def test_an_unknown_model_or_version_is_refused(spark: SparkSession, env: Settings) -> None:
    a, b = models(env)
    with pytest.raises(RollbackError, match=f"configured: {a}, {b}"):
        rollback(spark, env, good_version="1", model_name="no_such_model")
    with pytest.raises(RollbackError, match=f"{a} has no version 9 in the registry"):
        rollback(spark, env, good_version="9", model_name=a)


def test_the_cli_names_the_configured_models(spark: SparkSession, settings: Settings) -> None:
    result = CliRunner().invoke(app, ["rollback", "--model", "no_such_model", "--to-version", "1"])
    assert result.exit_code == 1, result.output
    assert "rollback refused" in result.output
    assert settings.model.name in result.output


def test_a_running_night_refuses_the_rollback(spark: SparkSession, env: Settings) -> None:
    a = env.model.name
    replace_model(spark, env, rows(ids(5), model=a, version="1", day=dt.date(1998, 1, 1), seed=1))
    replace_model(spark, env, rows(ids(5), model=a, version="2", day=dt.date(1998, 1, 2), seed=2))
    before = table_version(spark, env, PREDICTIONS_CURRENT)
    with (
        leased(env, name=NIGHT_LEASE, holder="the night of 1998-01-03"),
        pytest.raises(RollbackError, match="the night of 1998-01-03"),
    ):
        rollback(spark, env, good_version="1", model_name=a)
    assert table_version(spark, env, PREDICTIONS_CURRENT) == before
    champion = version_by_alias(configure_mlflow(env), model_name=a, alias=CHAMPION)
    assert champion is not None and str(champion.version) == "2"
    rollback(spark, env, good_version="1", model_name=a)  # the lease was released
