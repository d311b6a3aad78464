"""Nightly scoring: every customer of the feature partition for date D, with every model.

The models are the configured definitions (schemas/models.py): the primary model
(``model.name``, its champion required) and each ``model.additional`` definition
whose registered model has a champion (the others are skipped with a logged note).
One pass over the feature partition scores it with every model to score (each
champion, and its challenger in shadow), each on its own feature columns, into
``predictions.history`` in one commit (append-only; a re-run replaces exactly D's
rows of the models scored): ``score_history``. Only once the night's audit passed
(jobs/monitoring/audit.py) does ``publish_run`` update ``predictions.current`` per model
from the champion rows just written (no second scoring pass); an older score date never
overwrites a newer one. Everything that can fail (missing partition, missing primary
alias, features that do not fit a model) fails before anything is written.

Write, audit, publish as one call: ``jobs.ops.score.score_audited``; the job alone, with
its run record: ``python -m jobs.ops.score`` (jobs/ops/score.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.platform import (
    CHALLENGER,
    CHAMPION,
    ensure_table,
    last_commit,
    read_table,
    table_exists,
    table_path,
    table_version,
)
from jobs.scoring.compiled_trees import compile_ahead
from jobs.scoring.current import update_current
from jobs.scoring.files import RowGroup, feature_row_groups
from jobs.scoring.models import ModelToScore, check_features, feature_columns, resolve_models
from jobs.scoring.reasons import ReasonsPolicy, TableExplainer, build_tables
from jobs.scoring.transform import (
    PredictorTally,
    predictor_tally,
    score_batches,
    score_row_groups,
)
from schemas.settings import Settings
from schemas.tables import (
    CUSTOMER_FEATURES,
    PREDICTIONS_CURRENT,
    PREDICTIONS_HISTORY,
    PUBLICATIONS,
    SHADOW_COLUMNS,
)

log = logging.getLogger("lakescore.score")
_ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


class ScoringError(RuntimeError):
    """Scoring refused to run; nothing was written."""


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    """One night: the fields up to ``current_mode`` describe the primary model (``model.name``);
    ``models`` / ``current_modes`` cover every model scored, ``skipped_models`` the rest."""

    score_date: dt.date
    model_name: str
    model_version: str
    challenger_version: str | None
    rows: int
    run_id: str
    feature_table_version: int
    history_version: int
    current_version: int
    duration_s: float = 0.0
    current_mode: str = ""  # how current was updated: insert, replace or merge
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: checks, history, current
    # Every model scored tonight (primary first): name -> champion version, and its current mode.
    models: dict[str, str] = field(default_factory=dict)
    # The models whose other versions (challenger, pinned) were scored too.
    shadowed: tuple[str, ...] = ()
    current_modes: dict[str, str] = field(default_factory=dict)
    skipped_models: tuple[str, ...] = ()  # additional definitions without a champion yet
    # How the tasks scored each model: "name/role" -> {"compiled" | "lightgbm": rows}.
    predictors: dict[str, dict[str, int]] = field(default_factory=dict)
    # What read the feature partition for scoring: "pyarrow" (its row groups, in the
    # Python workers: jobs.scoring.files) or "spark" (Spark's scan).
    feature_reader: str = ""


def score_date(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, run_id: str | None = None
) -> ScoreResult:
    """Write the night's scores to history and publish them to current, unaudited.

    The nightly pipeline, ``python -m jobs.ops.score`` and the backfill audit between the
    two steps (``jobs.ops.score.score_audited``); this is for callers that do not."""
    written = score_history(spark, settings, score_date=score_date, run_id=run_id)
    return publish_scored(spark, settings, written=written, how="unaudited")


def score_history(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, run_id: str | None = None
) -> ScoreResult:
    """Score every customer of ``score_date`` with every model into ``predictions.history``
    (one commit); ``predictions.current`` is not touched (``publish_run`` does that)."""
    started = time.perf_counter()
    run_id = run_id or uuid.uuid4().hex
    model_name = settings.model.name
    models, skipped = resolve_models(settings, error=ScoringError)
    for name in skipped:
        log.info("model %r has no %r alias yet: not scored on %s", name, CHAMPION, score_date)
    features, feature_version = feature_partition(spark, settings, score_date=score_date)
    check_features(features, models=models, error=ScoringError)
    row_groups = None
    if settings.scoring.pyarrow_feature_reads:
        row_groups = feature_row_groups(
            settings,
            version=feature_version,
            score_date=score_date,
            columns=feature_columns(models),
        )
    seconds = {"checks": time.perf_counter() - started}
    champions = {m.model_name: m.version for m in models if m.role == CHAMPION}

    ensure_table(spark, settings, PREDICTIONS_HISTORY)
    ensure_table(spark, settings, PREDICTIONS_CURRENT)
    cache_dir = compiled_cache_dir(settings)
    if cache_dir is not None:
        for m in models:  # compiled once here, so that the tasks find it in the cache
            compile_ahead(m.booster.model_to_string(), cache_dir=cache_dir)
    seconds["compile"] = time.perf_counter() - started - sum(seconds.values())
    policy = reasons_policy(settings)
    tables = None
    if policy.mode != "off":  # built once here, shipped to the tasks with the models
        tables = [build_tables(m.booster.model_to_string()) for m in models]
    seconds["reason_tables"] = time.perf_counter() - started - sum(seconds.values())
    tally = predictor_tally(spark)
    rows = prediction_rows(
        spark,
        features,
        models=models,
        score_date=score_date,
        run_id=run_id,
        feature_version=feature_version,
        compiled_cache_dir=cache_dir,
        row_groups=row_groups,
        batch_rows=settings.scoring.arrow_batch_rows,
        tally=tally,
        reasons=policy,
        tables=tables,
    )
    previous = spark.conf.get(_ARROW_BATCH)
    spark.conf.set(_ARROW_BATCH, str(settings.scoring.arrow_batch_rows))
    try:
        history_version, written = _replace_history_rows(
            spark, settings, rows, score_date=score_date, model_names=list(champions)
        )
    finally:
        spark.conf.set(_ARROW_BATCH, previous or "10000")
    seconds["history"] = time.perf_counter() - started - sum(seconds.values())
    primary = [m for m in models if m.model_name == model_name]
    by_role = {m.role: m.version for m in primary}
    return ScoreResult(
        score_date=score_date,
        model_name=model_name,
        model_version=by_role[CHAMPION],
        challenger_version=by_role.get(CHALLENGER),
        rows=written // len(models),
        run_id=run_id,
        feature_table_version=feature_version,
        history_version=history_version,
        current_version=table_version(spark, settings, PREDICTIONS_CURRENT),
        duration_s=time.perf_counter() - started,
        seconds=seconds,
        models=champions,
        shadowed=tuple(sorted({m.model_name for m in models if m.role != CHAMPION})),
        skipped_models=tuple(skipped),
        predictors=predictor_rows(tally.value),
        feature_reader="spark" if row_groups is None else "pyarrow",
    )


@dataclass(frozen=True, kw_only=True)
class Publication:
    """What publishing a scored night changed in ``predictions.current``."""

    current_version: int
    modes: dict[str, str]  # model name -> insert, replace or merge
    seconds: float


def publish_run(
    spark: SparkSession,
    settings: Settings,
    *,
    score_date: dt.date,
    run_id: str,
    history_version: int | None = None,
    model_names: Sequence[str] | None = None,
    shadowed: Sequence[str] | None = None,
    how: str,
) -> Publication:
    """Put a scored night's champion rows into ``predictions.current``, model by model, and
    record it in ``monitoring.publications`` (``how``: ``audited``, ``reviewed: <note>``...).

    The rows are those of ``run_id`` in history (at ``history_version``, default the
    latest): if a later run of the date replaced them, ScoringError and nothing changes.
    ``model_names``: the champion models the run scored, when the caller knows them and
    the version is pinned (the version the run committed holds its rows: no scan to find
    them); ``shadowed``: which of them the run also scored other versions of (challenger,
    pinned), known with ``model_names``. Each champion row carries the same run's scores
    of the model's other versions (``current_rows``). An older score date never
    overwrites a newer one (``update_current``)."""
    started = time.perf_counter()
    version = (
        table_version(spark, settings, PREDICTIONS_HISTORY)
        if history_version is None
        else history_version
    )
    of_run = read_table(spark, settings, PREDICTIONS_HISTORY, version=version).where(
        (F.col("score_date") == F.lit(score_date)) & (F.col("run_id") == run_id)
    )
    tonight = of_run.where(F.col("model_role") == CHAMPION)
    if model_names and history_version is not None and shadowed is not None:
        names, with_shadow = sorted(model_names), set(shadowed)
    else:
        roles = of_run.select("model_name", "model_role").distinct().collect()
        names = sorted({r[0] for r in roles if r[1] == CHAMPION})
        with_shadow = {r[0] for r in roles if r[1] != CHAMPION}
    if not names:
        raise ScoringError(
            f"{PREDICTIONS_HISTORY.name} version {version} holds no champion row of run "
            f"{run_id} for {score_date.isoformat()}: nothing to publish"
        )
    modes = {
        name: update_current(
            spark,
            settings,
            current_rows(
                tonight.where(F.col("model_name") == name),
                of_run.where((F.col("model_name") == name) & (F.col("model_role") != CHAMPION))
                if name in with_shadow
                else None,
            ),
            score_date=score_date,
            model_name=name,
            history_version=version,
        )
        for name in names
    }
    current_version = table_version(spark, settings, PREDICTIONS_CURRENT)
    record_publication(
        spark,
        settings,
        run_id=run_id,
        score_date=score_date,
        history_version=version,
        current_version=current_version,
        modes=modes,
        how=how,
    )
    return Publication(
        current_version=current_version, modes=modes, seconds=time.perf_counter() - started
    )


def publish_scored(
    spark: SparkSession, settings: Settings, *, written: ScoreResult, how: str
) -> ScoreResult:
    """Publish what ``score_history`` wrote; ``written`` with what the publication changed."""
    publication = publish_run(
        spark,
        settings,
        score_date=written.score_date,
        run_id=written.run_id,
        history_version=written.history_version,
        model_names=list(written.models),
        shadowed=list(written.shadowed),
        how=how,
    )
    return replace(
        written,
        current_version=publication.current_version,
        current_mode=publication.modes.get(written.model_name, ""),
        current_modes=publication.modes,
        seconds={**written.seconds, "current": publication.seconds},
        duration_s=written.duration_s + publication.seconds,
    )


def current_rows(champions: DataFrame, shadows: DataFrame | None) -> DataFrame:
    """``predictions.current`` rows: the champion's history rows of one model and run, each
    with the same run's scores of the model's other versions (``shadows``: its challenger
    and pinned rows; None: the run scored none) as ``challenger_version`` and
    ``shadow_scores`` (version -> score)."""
    plain = [c for c in PREDICTIONS_CURRENT.columns if c not in SHADOW_COLUMNS]
    if shadows is None:
        return champions.select(
            *plain,
            F.lit(None).cast("string").alias("challenger_version"),
            F.lit(None).cast("map<string,double>").alias("shadow_scores"),
        )
    by_customer = shadows.groupBy("customer_id").agg(
        F.max(F.when(F.col("model_role") == CHALLENGER, F.col("model_version"))).alias(
            "challenger_version"
        ),
        F.map_from_entries(
            F.collect_list(F.struct(F.col("model_version").cast("string"), F.col("score")))
        ).alias("shadow_scores"),
    )
    return champions.select(*plain).join(by_customer, "customer_id", "left")


def record_publication(
    spark: SparkSession,
    settings: Settings,
    *,
    run_id: str,
    score_date: dt.date,
    history_version: int,
    current_version: int,
    modes: dict[str, str],
    how: str,
) -> None:
    """One ``monitoring.publications`` row (append-only): which run reached current, and how."""
    ensure_table(spark, settings, PUBLICATIONS)
    row = (
        run_id,
        score_date,
        json.dumps(modes, sort_keys=True),
        history_version,
        current_version,
        how,
        dt.datetime.now(dt.UTC).replace(tzinfo=None),
    )
    spark.createDataFrame([row], PUBLICATIONS.ddl).write.format("delta").mode("append").save(
        table_path(settings, PUBLICATIONS)
    )


def predictor_rows(tally: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{"name/role/predictor": rows}`` from the tasks as ``{"name/role": {predictor: rows}}``."""
    out: dict[str, dict[str, int]] = {}
    for key, rows in sorted(tally.items()):
        model, _, predictor = key.rpartition("/")
        out.setdefault(model, {})[predictor] = rows
    return out


def reasons_policy(settings: Settings) -> ReasonsPolicy:
    """Which scored rows get reasons, from ``scoring.reasons*``."""
    return ReasonsPolicy(
        mode=settings.scoring.reasons,
        share=settings.scoring.reasons_share,
        count=settings.scoring.reasons_count,
    )


def compiled_cache_dir(settings: Settings) -> str | None:
    """Where compiled models are kept, or None when scoring uses LightGBM itself."""
    if not settings.scoring.compiled_trees:
        return None
    return settings.scoring.compiled_cache_dir or str(
        Path(settings.data_dir) / "cache" / "compiled_trees"
    )


def feature_partition(
    spark: SparkSession, settings: Settings, *, score_date: dt.date
) -> tuple[DataFrame, int]:
    """The feature rows for ``score_date`` pinned to one table version, or ScoringError."""
    if not table_exists(spark, settings, CUSTOMER_FEATURES):
        raise ScoringError(f"{CUSTOMER_FEATURES.name} does not exist: build features first")
    version = table_version(spark, settings, CUSTOMER_FEATURES)
    features = read_table(spark, settings, CUSTOMER_FEATURES, version=version).where(
        F.col("as_of_date") == F.lit(score_date)
    )
    if not features.limit(1).collect():
        raise ScoringError(
            f"no feature partition {CUSTOMER_FEATURES.name}/as_of_date={score_date.isoformat()} "
            f"(table version {version}): build features for {score_date.isoformat()} first"
        )
    return features, version


def prediction_rows(
    spark: SparkSession,
    features: DataFrame,
    *,
    models: list[ModelToScore],
    score_date: dt.date,
    run_id: str,
    feature_version: int,
    compiled_cache_dir: str | None = None,
    row_groups: list[RowGroup] | None = None,
    batch_rows: int = 10_000,
    tally: PredictorTally | None = None,
    reasons: ReasonsPolicy | None = None,
    tables: list[TableExplainer | None] | None = None,
) -> DataFrame:
    """History rows (every model's score for every customer) from the feature rows, read
    from ``row_groups`` by pyarrow when given (the same rows as ``features``), else by Spark.
    ``reasons``: which rows get reasons (None: ``off``), recorded on every row."""
    policy = reasons or ReasonsPolicy(mode="off")
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if row_groups is not None:
        scored = score_row_groups(
            spark,
            row_groups,
            models=models,
            batch_rows=batch_rows,
            compiled_cache_dir=compiled_cache_dir,
            tally=tally,
            reasons=policy,
            tables=tables,
        )
    else:
        # One Python worker per task; give each the cores the other tasks leave idle.
        # Feature files have several row groups (jobs.features.build.ROW_GROUP_BYTES), so a
        # large partition is read by as many tasks as there are cores.
        tasks = max(1, features.rdd.getNumPartitions())
        threads = max(1, spark.sparkContext.defaultParallelism // tasks)
        scored = score_batches(
            features,
            models=models,
            num_threads=threads,
            compiled_cache_dir=compiled_cache_dir,
            tally=tally,
            reasons=policy,
            tables=tables,
        )
    return scored.select(
        "customer_id",
        "model_name",
        "model_version",
        "model_role",
        "score",
        F.lit(score_date).alias("score_date"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
        F.lit(run_id).alias("run_id"),
        F.lit(feature_version).cast("bigint").alias("feature_table_version"),
        "reasons",
        F.lit(policy.label).alias("reasons_policy"),
    )


def _replace_history_rows(
    spark: SparkSession,
    settings: Settings,
    rows: DataFrame,
    *,
    score_date: dt.date,
    model_names: list[str],
) -> tuple[int, int]:
    """Replace D's rows of these models in history (one commit): its version, rows written."""
    names = ", ".join(f"'{name}'" for name in model_names)
    condition = f"score_date = DATE'{score_date.isoformat()}' AND model_name IN ({names})"
    path = table_path(settings, PREDICTIONS_HISTORY)
    rows.write.format("delta").mode("overwrite").option("replaceWhere", condition).save(path)
    version, metrics = last_commit(spark, settings, PREDICTIONS_HISTORY)
    return version, int(metrics.get("numOutputRows", 0))
