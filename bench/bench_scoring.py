"""Scoring throughput: the whole ``jobs.scoring.run`` step against bare predict and ``spark_udf``.

``python -m bench scoring`` (or ``python -m bench.bench_scoring --customers 200000``).
Measured in one run, on the same rows and the same registered LightGBM model:

1. bare ``Booster.predict`` on an in-memory numpy array (2 threads): the ceiling;
2. ``jobs.scoring.run.score_date``: read the feature partition, score, append history,
   update current (current already holds yesterday's rows, as on a real night), with
   the models compiled to native code as configured by default (compiled once, by the
   warm-up night, as on the first night of a new champion; 2b is the same job scoring
   with LightGBM's own predict, for the record);
3. ``mlflow.pyfunc.spark_udf`` on the same partition: score and append to a Delta table.

Targets: (2) >= 0.5x (1) and >= 2x (3). (2) explains every row (``scoring.reasons``
``all``, the default); 2d is the same job with reasons off: (2) <= 2.5x 2d. 2f is the
job with a registered challenger (for the record: twice the scoring, and the phase
``current`` carrying its scores; compare ``phases_s`` with ``phases_challenger_s``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from bench.common import Measurement, Report, timed
from schemas.settings import Settings

DAY = dt.date(2024, 3, 1)


def bench_settings(root: Path, *, master: str) -> Settings:
    return Settings(
        data_dir=str(root / "data"),
        lake={"root": str(root / "lake")},  # type: ignore[arg-type]
        mlflow={  # type: ignore[arg-type]
            "tracking_uri": f"sqlite:///{root}/mlflow/mlflow.db",
            "artifact_root": str(root / "mlflow" / "artifacts"),
        },
        spark={"master": master, "shuffle_partitions": 2, "driver_memory": "6g"},  # type: ignore[arg-type]
    )


def run(*, customers: int, trees: int, master: str, leaves: int) -> Report:
    from pyspark.sql import functions as F

    from jobs.platform.lake import read_table, table_path
    from jobs.platform.spark import get_spark
    from jobs.scoring.run import score_date
    from schemas.tables import CUSTOMER_FEATURES
    from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

    report = Report(benchmark="scoring")
    report.notes.update(
        customers=customers, trees=trees, leaves=leaves, master=master, cpus=os.cpu_count()
    )
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        settings = bench_settings(Path(tmp), master=master)
        spark = get_spark(settings)
        booster = register_tiny_model(settings, trees=trees, train_rows=50_000, leaves=leaves)
        yesterday = DAY - dt.timedelta(days=1)
        write_feature_partition(spark, settings, as_of=yesterday, customers=customers, seed=1)
        write_feature_partition(spark, settings, as_of=DAY, customers=customers, seed=2)
        score_date(spark, settings, score_date=yesterday)  # warm-up; fills current

        frame: Any = (
            read_table(spark, settings, CUSTOMER_FEATURES)
            .where(F.col("as_of_date") == DAY)
            .toPandas()
        )
        matrix = frame[list(booster.feature_name())].to_numpy(np.float64)
        del frame
        bare = report.add(
            timed(
                "1 bare Booster.predict (2 threads)",
                customers,
                lambda: booster.predict(matrix, num_threads=2),
                repeat=2,
            )
        )
        results: list[Any] = []
        job = report.add(
            timed(
                "2 jobs.scoring.run.score_date",
                customers,
                lambda: results.append(score_date(spark, settings, score_date=DAY)),
                repeat=2,
            )
        )
        report.notes["current_mode"] = results[-1].current_mode
        report.notes["predictors"] = results[-1].predictors
        report.notes["feature_reader"] = results[-1].feature_reader
        report.notes["phases_s"] = {k: round(v, 2) for k, v in results[-1].seconds.items()}

        def variant(name: str, phases: str, **scoring: Any) -> Measurement:
            """For the record, not a baseline: the same job with other scoring settings."""
            changed = settings.model_copy(
                update={"scoring": settings.scoring.model_copy(update=scoring)}
            )
            measured = report.add(
                timed(
                    name,
                    customers,
                    lambda: results.append(score_date(spark, changed, score_date=DAY)),
                )
            )
            report.notes[phases] = {k: round(v, 2) for k, v in results[-1].seconds.items()}
            return measured

        lgbm = variant("2b score_date, LightGBM predict", "phases_lightgbm_s", compiled_trees=False)
        scan = variant(
            "2c score_date, Spark's feature scan",
            "phases_spark_scan_s",
            pyarrow_feature_reads=False,
        )
        # Reasons (jobs/scoring/reasons.py): the default job explains every row.
        plain = variant("2d score_date, reasons off", "phases_reasons_off_s", reasons="off")
        share = variant(
            "2e score_date, reasons for the top 10 %",
            "phases_reasons_top_share_s",
            reasons="top_share",
            reasons_share=0.1,
        )
        udf = report.add(_spark_udf(spark, settings, customers=customers, table=table_path))
        # A registered challenger: scored for everyone too, and its scores carried into
        # current beside the champion's (``current_rows``: a group and a join per model).
        register_tiny_model(
            settings, trees=trees, train_rows=50_000, leaves=leaves, seed=7, alias="challenger"
        )
        shadowed = report.add(
            timed(
                "2f score_date with a challenger (its scores in current too)",
                customers,
                lambda: results.append(score_date(spark, settings, score_date=DAY)),
            )
        )
        report.notes["phases_challenger_s"] = {
            k: round(v, 2) for k, v in results[-1].seconds.items()
        }
        report.ratio("time with a challenger / without", job, shadowed)
        report.ratio("score_date / bare predict (target >= 0.5)", job, bare)
        report.ratio("score_date / spark_udf (target >= 2)", job, udf)
        report.ratio("spark_udf / bare predict", udf, bare)
        report.ratio("time with reasons for all / reasons off (target <= 2.5)", plain, job)
        report.ratio("time with reasons for the top 10 % / reasons off", plain, share)
        report.ratio("score_date with LightGBM predict / bare predict", lgbm, bare)
        report.ratio("score_date with Spark's feature scan / bare predict", scan, bare)
        spark.stop()
    return report


def _spark_udf(spark: Any, settings: Settings, *, customers: int, table: Any) -> Measurement:
    import mlflow
    from pyspark.sql import functions as F

    from jobs.platform.lake import read_table
    from jobs.platform.registry import configure_mlflow
    from schemas.tables import CUSTOMER_FEATURES

    configure_mlflow(settings)
    predict = mlflow.pyfunc.spark_udf(
        spark, f"models:/{settings.model.name}@champion", result_type="double", env_manager="local"
    )
    out = f"{settings.lake.root}/bench/spark_udf"

    def go() -> None:
        features = read_table(spark, settings, CUSTOMER_FEATURES).where(F.col("as_of_date") == DAY)
        names = [c for c in features.columns if c not in ("customer_id", "as_of_date")]
        scored = features.select("customer_id", predict(F.struct(*names)).alias("score"))
        scored.write.format("delta").mode("overwrite").save(out)

    return timed("3 mlflow.pyfunc.spark_udf + write", customers, go, repeat=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--master", default="local[2]")
    # The trained models' shape by default (model.num_leaves); reasons by table lookups
    # cover trees of up to 11 leaves, larger ones cost LightGBM's pred_contrib.
    parser.add_argument("--leaves", type=int, default=Settings().model.num_leaves)
    # Known options only: ``python -m bench scoring`` passes the benchmark names along.
    args, _ = parser.parse_known_args(argv)
    lgb.register_logger(_Quiet())
    report = run(customers=args.customers, trees=args.trees, master=args.master, leaves=args.leaves)
    report.print_and_save()
    for key in (
        "predictors",
        "feature_reader",
        "phases_s",
        "phases_lightgbm_s",
        "phases_spark_scan_s",
        "phases_reasons_off_s",
        "phases_reasons_top_share_s",
    ):
        print(f"  {key}: {report.notes.get(key)}")


class _Quiet:
    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...


if __name__ == "__main__":
    main()
