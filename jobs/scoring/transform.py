"""The scoring transform.

``score_batches`` is a pure transform that runs on the executors: Arrow record
batches in, Arrow record batches out (``mapInArrow``, no pandas conversion), every
model predicting on one float matrix built once per batch, compiled to native code
where it can be (``jobs.scoring.compiled_trees``), else through LightGBM.
``score_row_groups`` is the same scoring fed by pyarrow reading the partition's Parquet
row groups in the workers (``jobs.scoring.files``) instead of Spark's scan.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.accumulators import Accumulator, AccumulatorParam
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.scoring.compiled_trees import Predictor, load_predictor
from jobs.scoring.files import RowGroup
from jobs.scoring.models import ModelToScore, feature_columns
from jobs.scoring.reasons import (
    REASONS_DDL,
    REASONS_TYPE,
    Explainer,
    ReasonsPolicy,
    TableExplainer,
    load_explainer,
    reasons_array,
    top_reasons,
)


class _CountsParam(AccumulatorParam[dict[str, int]]):
    """Adds per-key row counts from the tasks into the driver's dict."""

    def zero(self, value: dict[str, int]) -> dict[str, int]:
        return {}

    def addInPlace(self, value1: dict[str, int], value2: dict[str, int]) -> dict[str, int]:
        for key, rows in value2.items():
            value1[key] = value1.get(key, 0) + rows
        return value1


PredictorTally = Accumulator[dict[str, int]]


def predictor_tally(spark: SparkSession) -> PredictorTally:
    """A tally the scoring tasks add to: ``"name/role/predictor" -> rows`` it scored.

    Counted in the tasks, not decided in the driver: a model the driver compiled but a
    worker scored with LightGBM (its compiler failed, or the probe disagreed) shows as
    ``lightgbm``. A retried task adds its rows again, so a total above the rows written
    means a task ran twice, never that rows were lost.
    """
    return spark.sparkContext.accumulator({}, _CountsParam())


def score_batches(
    features: DataFrame,
    *,
    models: list[ModelToScore],
    num_threads: int = 1,
    compiled_cache_dir: str | None = None,
    tally: PredictorTally | None = None,
    reasons: ReasonsPolicy | None = None,
    tables: list[TableExplainer | None] | None = None,
) -> DataFrame:
    """``customer_id, model_name, model_role, model_version, score, reasons``: one row per
    customer and model; each model predicts on its own feature columns of the one matrix.
    ``reasons``: which rows get their top feature contributions (``jobs.scoring.reasons``;
    None: none), from ``tables`` built in the driver (one per model, None: built in the task).

    ``compiled_cache_dir``: score with each model compiled to native code (cached there,
    ``jobs.scoring.compiled_trees``), checked against LightGBM on the first rows; None: LightGBM.
    """
    columns = feature_columns(models)
    predict = _scorer(
        models,
        num_threads=num_threads,
        compiled_cache_dir=compiled_cache_dir,
        tally=tally,
        reasons=reasons,
        tables=tables,
    )
    scored = features.select("customer_id", *columns).mapInArrow(
        predict,  # type: ignore[arg-type]
        schema=_SCORED,
    )
    return _named(scored, models=models)


def score_row_groups(
    spark: SparkSession,
    row_groups: list[RowGroup],
    *,
    models: list[ModelToScore],
    batch_rows: int,
    compiled_cache_dir: str | None = None,
    tally: PredictorTally | None = None,
    reasons: ReasonsPolicy | None = None,
    tables: list[TableExplainer | None] | None = None,
) -> DataFrame:
    """``score_batches`` reading the feature partition's Parquet row groups with pyarrow in
    the Python workers (``jobs.scoring.files``), not through Spark's scan: the same rows
    and scores without the JVM's row-by-row copy into Arrow. One task per core (fewer when
    there are fewer row groups); each predicts on the cores the other tasks leave idle."""
    cores = max(1, spark.sparkContext.defaultParallelism)
    tasks = max(1, min(cores, len(row_groups)))
    columns = ["customer_id", *feature_columns(models)]
    predict = _scorer(
        models,
        num_threads=max(1, cores // tasks),
        compiled_cache_dir=compiled_cache_dir,
        tally=tally,
        reasons=reasons,
        tables=tables,
    )

    def read(units: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for unit in units:
            listed = zip(unit.column(0).to_pylist(), unit.column(1).to_pylist(), strict=True)
            # A task's row groups come file by file: each file is opened (footer read) once.
            for path, groups in itertools.groupby(listed, key=lambda group: group[0]):
                yield from pq.ParquetFile(path).iter_batches(
                    batch_size=batch_rows, row_groups=[i for _, i in groups], columns=columns
                )

    units = spark.createDataFrame(
        spark.sparkContext.parallelize([(g.path, g.index) for g in row_groups], tasks),
        "path STRING, row_group INT",
    )
    scored = units.mapInArrow(
        lambda batches: predict(read(batches)),  # type: ignore[arg-type]
        schema=_SCORED,
    )
    return _named(scored, models=models)


_SCORED = f"customer_id STRING, model TINYINT, score DOUBLE, reasons {REASONS_DDL}"


def _scorer(
    models: list[ModelToScore],
    *,
    num_threads: int,
    compiled_cache_dir: str | None,
    tally: PredictorTally | None = None,
    reasons: ReasonsPolicy | None = None,
    tables: list[TableExplainer | None] | None = None,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Record batches holding ``customer_id`` and the feature columns in, one scored batch
    per batch and model out (``customer_id, model, score, reasons``; ``model`` indexes
    ``models``; ``reasons`` null where the policy gives none)."""
    columns = feature_columns(models)
    payload = [
        ([columns.index(n) for n in m.booster.feature_name()], m.booster.model_to_string())
        for m in models
    ]
    names = [list(m.booster.feature_name()) for m in models]
    everything = list(range(len(columns)))
    labels = [f"{m.model_name}/{m.role}" for m in models]
    explain = reasons is not None and reasons.mode != "off"
    prebuilt = tables if tables is not None else [None] * len(models)

    def predict(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        predictors: list[tuple[list[int], Predictor]] = []
        explainers: list[Explainer] = []
        for batch in batches:
            n = batch.num_rows
            x = np.empty((n, len(columns)), dtype=np.float64)
            for j, name in enumerate(columns):
                col = pc.cast(batch.column(name), pa.float64())
                x[:, j] = col.fill_null(np.nan).to_numpy(zero_copy_only=False)
            if not predictors:  # once per task, probed on its first rows
                predictors = [
                    (idx, load_predictor(text, cache_dir=compiled_cache_dir, probe=x[:, idx]))
                    for idx, text in payload
                ]
                if explain:
                    explainers = [
                        load_explainer(
                            text,
                            probe=x[:, idx],
                            tables=built,
                            build=tables is None,  # the driver's None: the tables cannot hold it
                            num_threads=1,
                        )
                        for (idx, text), built in zip(payload, prebuilt, strict=True)
                    ]
            ids = batch.column("customer_id")
            for k, (idx, predictor) in enumerate(predictors):
                matrix = x if idx == everything else x[:, idx]
                score = predictor.predict(matrix, num_threads=num_threads)
                if tally is not None:
                    tally.add({f"{labels[k]}/{predictor.kind}": n})
                if explain:
                    assert reasons is not None
                    why = _reasons(explainers[k], matrix, score, policy=reasons, names=names[k])
                else:
                    why = pa.nulls(n, REASONS_TYPE)
                yield pa.RecordBatch.from_arrays(
                    [ids, pa.array(np.full(n, k, dtype=np.int8)), pa.array(score), why],
                    names=["customer_id", "model", "score", "reasons"],
                )

    return predict


def _reasons(
    explainer: Explainer,
    matrix: np.ndarray,
    score: np.ndarray,
    *,
    policy: ReasonsPolicy,
    names: list[str],
) -> pa.Array:
    """The policy's rows of this batch explained: their top contributions, the rest null."""
    rows = policy.rows(score)
    chosen = matrix if rows is None else matrix[rows]
    if chosen.shape[0] == 0:
        return pa.nulls(matrix.shape[0], REASONS_TYPE)
    index, contribution, value = top_reasons(
        explainer.contributions(chosen), chosen, count=policy.count
    )
    return reasons_array(
        matrix.shape[0],
        explained=rows,
        index=index,
        contribution=contribution,
        value=value,
        names=names,
    )


def _named(scored: DataFrame, *, models: list[ModelToScore]) -> DataFrame:
    """The scored rows with each model's name, role and version instead of its index."""
    names = F.array(*[F.lit(m.model_name) for m in models])
    roles = F.array(*[F.lit(m.role) for m in models])
    versions = F.array(*[F.lit(m.version) for m in models])
    index = F.col("model").cast("int") + 1
    return scored.select(
        "customer_id",
        F.element_at(names, index).alias("model_name"),
        F.element_at(roles, index).alias("model_role"),
        F.element_at(versions, index).alias("model_version"),
        "score",
        "reasons",
    )
