"""The models a scoring run uses, their checks against the features, and the scoring transform.

Every configured model (schemas/models.py) with a champion is scored from the same
feature rows: the primary model always (no champion is an error), each additional
definition once it has one.

``score_batches`` is a pure transform that runs on the executors: Arrow record
batches in, Arrow record batches out (``mapInArrow``, no pandas conversion), every
model predicting on one float matrix built once per batch, compiled to native code
where it can be (``jobs.compiled_trees``), else through LightGBM.
``score_row_groups`` is the same scoring fed by pyarrow reading the partition's Parquet
row groups in the workers (``jobs.score_files``) instead of Spark's scan.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from jobs.compiled_trees import Predictor, load_predictor
from jobs.registry import CHALLENGER, CHAMPION, configure_mlflow, load_booster, version_by_alias
from jobs.score_files import RowGroup
from schemas.models import model_definitions
from schemas.settings import Settings


@dataclass(frozen=True, kw_only=True)
class ModelToScore:
    model_name: str  # the registered model (a definition of schemas.models)
    role: str  # champion or challenger
    version: str
    booster: lgb.Booster
    signature_inputs: tuple[str, ...] = ()  # column names of the registered signature


def resolve_models(
    settings: Settings, *, error: type[Exception]
) -> tuple[list[ModelToScore], list[str]]:
    """Every configured model to score tonight, and the additional ones skipped.

    The primary model's champion is required (``error`` without one); each
    ``model.additional`` definition is scored when it has a champion and skipped
    (named in the second list) when it has none yet. Each champion brings its
    distinct challenger, if any, for shadow scoring.
    """
    client = configure_mlflow(settings)
    primary, *additional = model_definitions(settings)
    models = _aliased(client, primary.name)
    if not models:
        raise error(
            f"model {primary.name!r} has no {CHAMPION!r} alias in the registry at "
            f"{settings.mlflow.tracking_uri}: train and promote a model first"
        )
    skipped = []
    for definition in additional:
        found = _aliased(client, definition.name)
        models += found
        if not found:
            skipped.append(definition.name)
    return models, skipped


def _aliased(client: MlflowClient, name: str) -> list[ModelToScore]:
    """The champion and a distinct challenger of ``name``, loaded; empty without a champion."""
    champion = version_by_alias(client, model_name=name, alias=CHAMPION)
    if champion is None:
        return []
    versions = {CHAMPION: str(champion.version)}
    challenger = version_by_alias(client, model_name=name, alias=CHALLENGER)
    if challenger is not None and str(challenger.version) != versions[CHAMPION]:
        versions[CHALLENGER] = str(challenger.version)
    return [
        ModelToScore(
            model_name=name,
            role=role,
            version=version,
            booster=load_booster(model_name=name, version=version),
            signature_inputs=_signature_inputs(name, version),
        )
        for role, version in versions.items()
    ]


def _signature_inputs(name: str, version: str) -> tuple[str, ...]:
    from mlflow.models import get_model_info

    signature = get_model_info(f"models:/{name}/{version}").signature
    if signature is None or signature.inputs is None:
        return ()
    return tuple(n for n in signature.inputs.input_names() if isinstance(n, str))


def check_features(
    features: DataFrame, *, models: list[ModelToScore], error: type[Exception]
) -> None:
    """Every feature a model needs exists and is numeric, else ``error`` naming them."""
    types = {f.name: f.dataType for f in features.schema.fields}
    for model in models:
        needed = list(dict.fromkeys([*model.booster.feature_name(), *model.signature_inputs]))
        missing = [n for n in needed if n not in types]
        if missing:
            raise error(
                f"{model.role} {model.model_name} v{model.version} needs features missing from "
                f"gold.customer_features: {', '.join(missing)}"
            )
        wrong = [f"{n} ({types[n].simpleString()})" for n in needed if not _numeric(types[n])]
        if wrong:
            raise error(
                f"{model.role} {model.model_name} v{model.version} needs numeric features; "
                f"gold.customer_features has: {', '.join(wrong)}"
            )


def _numeric(data_type: object) -> bool:
    return isinstance(data_type, NumericType)


def score_batches(
    features: DataFrame,
    *,
    models: list[ModelToScore],
    num_threads: int = 1,
    compiled_cache_dir: str | None = None,
) -> DataFrame:
    """``customer_id, model_name, model_role, model_version, score``: one row per customer and
    model; each model predicts on its own feature columns of the one matrix.

    ``compiled_cache_dir``: score with each model compiled to native code (cached there,
    ``jobs.compiled_trees``), checked against LightGBM on the first rows; None: LightGBM.
    """
    columns = feature_columns(models)
    predict = _scorer(models, num_threads=num_threads, compiled_cache_dir=compiled_cache_dir)
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
) -> DataFrame:
    """``score_batches`` reading the feature partition's Parquet row groups with pyarrow in
    the Python workers (``jobs.score_files``), not through Spark's scan: the same rows
    and scores without the JVM's row-by-row copy into Arrow. One task per core (fewer when
    there are fewer row groups); each predicts on the cores the other tasks leave idle."""
    cores = max(1, spark.sparkContext.defaultParallelism)
    tasks = max(1, min(cores, len(row_groups)))
    columns = ["customer_id", *feature_columns(models)]
    predict = _scorer(
        models, num_threads=max(1, cores // tasks), compiled_cache_dir=compiled_cache_dir
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


_SCORED = "customer_id STRING, model TINYINT, score DOUBLE"


def feature_columns(models: list[ModelToScore]) -> list[str]:
    """Every feature column any of the models reads, each once, in the models' order."""
    return list(dict.fromkeys(n for m in models for n in m.booster.feature_name()))


def _scorer(
    models: list[ModelToScore], *, num_threads: int, compiled_cache_dir: str | None
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Record batches holding ``customer_id`` and the feature columns in, one scored batch
    per batch and model out (``customer_id, model, score``; ``model`` indexes ``models``)."""
    columns = feature_columns(models)
    payload = [
        ([columns.index(n) for n in m.booster.feature_name()], m.booster.model_to_string())
        for m in models
    ]
    everything = list(range(len(columns)))

    def predict(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        predictors: list[tuple[list[int], Predictor]] = []
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
            ids = batch.column("customer_id")
            for k, (idx, predictor) in enumerate(predictors):
                matrix = x if idx == everything else x[:, idx]
                score = predictor.predict(matrix, num_threads=num_threads)
                yield pa.RecordBatch.from_arrays(
                    [ids, pa.array(np.full(n, k, dtype=np.int8)), pa.array(score)],
                    names=["customer_id", "model", "score"],
                )

    return predict


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
    )
