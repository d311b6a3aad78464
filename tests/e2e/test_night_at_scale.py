"""One night at scale on one machine, with the default settings, through the command line.

``lakescore generate`` draws ``LAKESCORE_SCALE_CUSTOMERS`` synthetic customers (default
1,000,000) over ``DAYS`` days; ``lakescore night`` then runs the whole nightly job on
them in a subprocess: ingest, features, contract, the first champion and cold-start
model (trained and gated on the spot: the registry is empty), scoring, audit, publish,
sync and report. Only the stores are this run's own (data dir, lake, MLflow, Dagster
instance, the local Mongo-wire server's port and storage); Spark master, driver memory,
shuffle partitions and the model settings are the defaults of ``conf/local.yaml``.

The outputs are counted each on its own side: featured customers in
``gold.customer_features`` with Spark, rows of ``predictions.current`` with Spark,
documents in MongoDB with the driver. The figures (wall time, per-step durations from
the Dagster instance, peak memory of the process tree) are printed and written to
``figures.json`` in the run's folder, ``data/scale/run-<customers>`` (or under
``LAKESCORE_SCALE_DIR``), which the next run of the same size replaces.

``make test-scale`` runs it; ``LAKESCORE_SCALE_CUSTOMERS=100000`` for a shorter run,
``LAKESCORE_SCALE_TIMEOUT_S`` for the night's deadline (default two hours).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.nights import TreeMemory, cli, dagster_run, run_env, settings_for
from jobs.sync.state import served_collection
from tests.conftest import free_port

CUSTOMERS = int(os.environ.get("LAKESCORE_SCALE_CUSTOMERS", "1000000"))
NIGHT_TIMEOUT_S = float(os.environ.get("LAKESCORE_SCALE_TIMEOUT_S", "7200"))
# One year of orders: the purged split of the default model settings (20 weekly as-of
# dates, 30-day horizon) needs its oldest training date S - 3*30 - 19*7 = S - 223 days
# after the first order, and the holdout's label window ends the day before S.
DAYS = 365
START = dt.date(2023, 1, 1)
SCORE_DATE = START + dt.timedelta(days=DAYS)  # features see every generated order
SEED = 1
SAMPLE_IDS = 2_000  # featured customers looked up in MongoDB one by one (in batches)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(int(NIGHT_TIMEOUT_S) + 1800),
]

REPO = Path(__file__).resolve().parents[2]
# -- the run ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScaleNight:
    root: Path
    env: dict[str, str]
    settings: Any
    generate_s: float
    night_s: float
    returncode: int
    log: Path
    memory: TreeMemory


def run_root() -> Path:
    """A fresh folder for the run's files, outside pytest's temporary folders (other test
    sessions prune those while a long night is still running)."""
    base = Path(os.environ.get("LAKESCORE_SCALE_DIR") or REPO / "data" / "scale")
    root = base / f"run-{CUSTOMERS}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def scale_night() -> Iterator[ScaleNight]:
    root = run_root()
    landing = root / "landing"
    env = run_env(root, landing, free_port())
    began = time.perf_counter()
    subprocess.run(
        [
            *cli(),
            "generate",
            "--customers",
            str(CUSTOMERS),
            "--days",
            str(DAYS),
            "--seed",
            str(SEED),
            "--start",
            START.isoformat(),
            "--out",
            str(landing),
        ],
        env=env,
        cwd=REPO,
        check=True,
        timeout=1800,
    )
    generate_s = time.perf_counter() - began
    settings = settings_for(env)
    log = root / "night.log"
    began = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cli(), "night", "--date", SCORE_DATE.isoformat()],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        memory = TreeMemory(root_pid=proc.pid)
        poller = threading.Thread(target=memory.run, daemon=True)
        poller.start()
        try:
            returncode = proc.wait(timeout=NIGHT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
        finally:
            memory.stop()
            poller.join()
    night_s = time.perf_counter() - began
    try:
        yield ScaleNight(
            root=root,
            env=env,
            settings=settings,
            generate_s=generate_s,
            night_s=night_s,
            returncode=returncode,
            log=log,
            memory=memory,
        )
    finally:
        from jobs.platform.local_mongo import stop_local_mongo

        stop_local_mongo(settings)


@pytest.fixture(scope="module")
def figures(scale_night: ScaleNight, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """What the run measured; printed and written to ``data/scale/`` at the end of the module."""
    run = dagster_run(scale_night.settings, score_date=SCORE_DATE)
    out: dict[str, Any] = {
        "customers": CUSTOMERS,
        "days": DAYS,
        "score_date": SCORE_DATE.isoformat(),
        "spark_master": scale_night.settings.spark.master,
        "driver_memory": scale_night.settings.spark.driver_memory,
        "cpus": os.cpu_count(),
        "generate_s": round(scale_night.generate_s, 1),
        "night_s": round(scale_night.night_s, 1),
        "night_returncode": scale_night.returncode,
        "dagster_run_id": run.run_id,
        "dagster_status": run.status,
        "steps_s": run.steps_s,
        "step_attempts": run.attempts,
        "step_errors": run.errors,
        "peak_pss_tree_mib": round(scale_night.memory.peak_total / 2**20),
        "peak_pss_by_kind_mib": {
            k: round(v / 2**20) for k, v in sorted(scale_night.memory.peak_by_kind.items())
        },
        "peak_rss_largest_processes_mib": {
            k: round(v / 2**20)
            for k, v in sorted(scale_night.memory.peak_by_process.items(), key=lambda kv: -kv[1])[
                :5
            ]
        },
        "log": str(scale_night.log),
    }
    yield out
    path = scale_night.root / "figures.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nnight at scale ({path}):\n{json.dumps(out, indent=2, default=str)}")


@pytest.fixture(scope="module")
def spark(scale_night: ScaleNight) -> Any:
    """A Spark session for counting, opened after the night ended (reads by path)."""
    from jobs.platform.spark import get_spark

    return get_spark(scale_night.settings)


def test_the_night_succeeds(scale_night: ScaleNight, figures: dict[str, Any]) -> None:
    tail = scale_night.log.read_text(errors="replace")[-3000:]
    errors = "\n".join(figures["step_errors"])
    assert scale_night.returncode == 0, f"night failed ({scale_night.log}):\n{errors}\n{tail}"
    assert figures["dagster_status"] == "SUCCESS", figures
    assert f"night {SCORE_DATE} done" in tail


def test_every_featured_customer_has_one_current_row_per_champion_and_one_document(
    scale_night: ScaleNight, figures: dict[str, Any], spark: Any
) -> None:
    from pymongo import MongoClient
    from pyspark.sql import functions as F

    from jobs.platform.lake import read_table
    from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_CURRENT

    settings = scale_night.settings
    featured = (
        read_table(spark, settings, CUSTOMER_FEATURES)
        .where(F.col("as_of_date") == F.lit(SCORE_DATE))
        .select("customer_id")
    )
    n_featured = featured.distinct().count()
    figures["featured_customers"] = n_featured
    # Customers with an order before the score date: most of those generated, never more.
    assert 0.5 * CUSTOMERS < n_featured <= CUSTOMERS

    current = read_table(spark, settings, PREDICTIONS_CURRENT)
    models = {settings.model.name, *(m.name for m in settings.model.additional)}
    per_model = {
        r["model_name"]: (int(r["rows"]), int(r["customers"]))
        for r in current.groupBy("model_name")
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("customer_id").alias("customers"))
        .collect()
    }
    figures["current_rows_by_model"] = {m: rows for m, (rows, _) in per_model.items()}
    # The defaults configure one model; it is the only champion the night could score.
    assert set(per_model) == models
    for name in models:
        rows, customers = per_model[name]
        assert rows == customers == n_featured, (name, rows, customers, n_featured)
        scored = current.where(F.col("model_name") == name).select("customer_id")
        assert featured.join(scored, "customer_id", "left_anti").limit(1).count() == 0
        assert scored.join(featured, "customer_id", "left_anti").limit(1).count() == 0
        assert current.where(F.col("score_date") != F.lit(SCORE_DATE)).limit(1).count() == 0

    sample = [
        r["customer_id"]
        for r in featured.sample(fraction=min(1.0, 3 * SAMPLE_IDS / n_featured), seed=SEED)
        .limit(SAMPLE_IDS)
        .collect()
    ]
    client: Any = MongoClient(settings.mongo.effective_uri, serverSelectionTimeoutMS=5000)
    try:
        coll = served_collection(client, settings)
        n_documents = coll.count_documents({})
        figures["mongo_documents"] = n_documents
        assert n_documents == n_featured
        for name in models:
            assert coll.count_documents({f"models.{name}": {"$exists": True}}) == n_featured
        found: set[str] = set()
        for i in range(0, len(sample), 500):
            batch = sample[i : i + 500]
            found.update(d["_id"] for d in coll.find({"_id": {"$in": batch}}, {"_id": 1}))
        missing = sorted(set(sample) - found)
        assert not missing, f"{len(missing)} of {len(sample)} sampled customers have no document"
        doc = coll.find_one({"_id": random.Random(SEED).choice(sample)})
        assert doc is not None
        for name in models:
            assert doc["models"][name]["score_date"] == SCORE_DATE.isoformat()
    finally:
        client.close()


def test_training_sets_stay_within_the_cap(
    scale_night: ScaleNight, figures: dict[str, Any]
) -> None:
    from mlflow import MlflowClient

    settings = scale_night.settings
    cap = settings.model.max_training_rows
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trained = {
        r.data.tags["model.definition"]: r.data.tags
        for r in runs
        if "training.rows" in r.data.tags and "model.definition" in r.data.tags
    }
    figures["training"] = {
        name: {
            "rows": int(tags["training.rows"]),
            "rows_before_sample_at_most": tags.get("training.rows_before_sample_at_most"),
            "sample_fraction": tags.get("training.sample_fraction"),
        }
        for name, tags in trained.items()
    }
    # The night trained both models the registry lacked: the champion and its cold-start twin.
    from schemas.coldstart import COLDSTART_SUFFIX

    assert set(trained) >= {settings.model.name, settings.model.name + COLDSTART_SUFFIX}
    for name, tags in trained.items():
        assert int(tags["training.rows"]) <= cap, (name, tags["training.rows"], cap)
        assert int(tags["training.max_rows"]) == cap
        bound = int(tags["training.rows_before_sample_at_most"])
        if bound > cap:  # sampled: the fraction logged is the one that keeps it under the cap
            assert float(tags["training.sample_fraction"]) < 1.0


def test_the_nights_score_run_passed_its_audit_and_was_published(
    scale_night: ScaleNight, figures: dict[str, Any], spark: Any
) -> None:
    from pyspark.sql import functions as F

    from jobs.platform.lake import read_table
    from schemas.tables import PUBLICATIONS, SCORE_RUNS

    settings = scale_night.settings
    runs = (
        read_table(spark, settings, SCORE_RUNS)
        .where(F.col("score_date") == F.lit(SCORE_DATE))
        .collect()
    )
    assert len(runs) == 1, [r.asDict() for r in runs]
    [run] = runs
    figures["score_run"] = {
        "customers_known": run["customers_known"],
        "customers_scored": run["customers_scored"],
        "coverage": run["coverage"],
        "scoring_duration_s": run["duration_s"],
        "audit": run["audit_json"],
    }
    assert run["audit_json"] == "{}"
    assert run["coverage"] >= settings.scoring.min_coverage
    published = (
        read_table(spark, settings, PUBLICATIONS).where(F.col("run_id") == run["run_id"]).count()
    )
    assert published == 1
    report = Path(settings.data_dir) / "reports" / SCORE_DATE.isoformat() / "nightly.html"
    assert report.exists(), report
