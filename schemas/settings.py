"""The one typed settings model: ``conf/<env>.yaml`` overlaid by environment variables.

Precedence (highest first): explicit keyword arguments, environment variables
``LAKESCORE_<SECTION>__<FIELD>``, the conventional ``MONGO_URI``,
``MLFLOW_TRACKING_URI`` and ``SPARK_MASTER``, the YAML file, the defaults below.
Relative paths are resolved against the working directory when loaded, so that
Spark, MLflow and the API all see the same absolute locations.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from schemas.models import LabelKind, ModelDefinition

CONF_DIR_ENV = "LAKESCORE_CONF_DIR"
ENV_NAME_ENV = "LAKESCORE_ENV"
# Delta refuses a VACUUM shorter than this by default (spark.databricks.delta.retentionDurationCheck).
DELTA_MIN_VACUUM_HOURS = 168


class _Section(BaseModel):
    """A settings section: unknown keys are errors (a typo never silently falls back)."""

    model_config = ConfigDict(extra="forbid")


class SparkSettings(_Section):
    master: str = "local[*]"
    app_name: str = "lakescore"
    shuffle_partitions: int = Field(default=8, ge=1)
    driver_memory: str = "4g"
    ui_enabled: bool = False
    extra_conf: dict[str, str] = Field(default_factory=dict)
    # The Delta jars, copied here once by the setup step (``python -m jobs.platform.spark``)
    # and passed as ``spark.jars``, so no session resolves packages. Empty: the running
    # environment's ``share/lakescore/jars``. Without a complete folder, Spark's resolver
    # fetches them (Maven Central, then its Ivy cache).
    jars_dir: str = ""


class LakeSettings(_Section):
    root: str = "data/lake"


class MlflowSettings(_Section):
    tracking_uri: str = "sqlite:///data/mlflow/mlflow.db"
    artifact_root: str = "data/mlflow/artifacts"
    experiment: str = "lakescore"
    # Where people open the MLflow UI, for the run links in Dagster (empty: the tracking URI
    # when it is a server, else a local `mlflow ui --backend-store-uri <tracking_uri>`).
    ui_url: str = ""

    def run_url(self, *, experiment_id: str, run_id: str) -> str:
        base = self.ui_url or (
            self.tracking_uri
            if self.tracking_uri.startswith(("http://", "https://"))
            else "http://127.0.0.1:5000"
        )
        return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


class MongoSettings(_Section):
    # Empty means: start the embedded Mongo-wire server (SecantusDB) locally.
    uri: str = ""
    database: str = "scoring"
    collection: str = "predictions"
    local_port: int = Field(default=27818, ge=1, le=65535)
    local_storage_path: str = "data/mongo"
    server_selection_timeout_ms: int = Field(default=2000, ge=1)
    socket_timeout_ms: int = Field(default=5000, ge=1)
    # Blue/green by pointer: a full resync writes a new ``<collection>__v<version>_<run>``
    # collection and, once verified, points the watermark document at it (one write, the
    # commit). Collections it replaced are kept for an instant switch back: the newest
    # keep_collections of them; older ones are dropped by a later sync, and only once
    # drop_grace_s has passed since they stopped being served (longer than the API's
    # watermark poll, so no reader still holds one).
    keep_collections: int = Field(default=1, ge=0)
    drop_grace_s: float = Field(default=300.0, gt=0.0)
    write_concern_w: int | str = 1
    # Journaled writes (None: the server's default); wtimeout for w > 1 (0: none).
    write_concern_j: bool | None = None
    write_concern_timeout_ms: int = Field(default=0, ge=0)
    batch_size: int = Field(default=5000, ge=1)
    # Sync: incremental when at most this fraction of customers changed since the
    # synced version, else blue/green (set by measurement: bench/bench_sync.py).
    incremental_max_fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    verify_sample_size: int = Field(default=200, ge=0)
    # Bounded retries of transient errors (network, failover) per batch.
    retry_attempts: int = Field(default=5, ge=1)
    retry_initial_backoff_s: float = Field(default=0.2, ge=0.0)
    retry_max_backoff_s: float = Field(default=5.0, ge=0.0)

    @property
    def effective_uri(self) -> str:
        """The configured URI, or the embedded local server's address."""
        return self.uri or f"mongodb://127.0.0.1:{self.local_port}/"


class ModelSettings(_Section):
    name: str = "purchase_30d"
    horizon_days: int = Field(default=30, ge=1)
    # How many past as-of dates (spaced by ``training_step_days``) the training set uses.
    # Weekly as-of dates: on CDNOW, 20 of them beat the recency/frequency baseline where 6
    # monthly ones did not (``python -m jobs.ops.retrain --date 1998-02-01``, both settings).
    training_dates: int = Field(default=20, ge=3)
    training_step_days: int = Field(default=7, ge=1)
    # The split is purged (jobs/training/trainset.py): when the orders do not reach back far
    # enough for ``training_dates``, training fails naming the dates; True trains on the
    # usable ones instead (at least one training date).
    allow_fewer_training_dates: bool = False
    # Rows a training set may bring to the driver: above it, a seeded customer sample drawn
    # in Spark (the same fraction of every label class and date). 1M rows of ~30 features
    # are ~250 MiB of pandas; 20 as-of dates of 1M customers (20M rows) died of an
    # OutOfMemoryError collecting them.
    max_training_rows: int = Field(default=1_000_000, ge=1_000)
    seed: int = 42
    num_boost_round: int = Field(default=1000, ge=1)
    early_stopping_rounds: int = Field(default=30, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    # Small trees: with the purged split, CDNOW's holdout AUC (1998-02-01, 20 dates) is 0.8193
    # at 7 leaves / 200 rows per leaf against 0.8181 at 31 / 50, and the gap widens with fewer
    # training dates (0.8174 against 0.8130 at 8); measured with jobs.training on CDNOW.
    num_leaves: int = Field(default=7, ge=2)
    min_data_in_leaf: int = Field(default=200, ge=1)
    # Binary models: Platt scaling fitted on the validation period and folded into the trees
    # (jobs/training/calibration.py) when its expected calibration error there exceeds
    # ``max_calibration_error`` ("auto"), always, or never.
    calibration: Literal["auto", "always", "never"] = "auto"
    max_calibration_error: float = Field(default=0.02, ge=0.0, le=1.0)
    # Repeat every fit on half the training customers and log both holdout metrics (the
    # learning curve the row cap is judged by); costs about half a fit more.
    learning_curve: bool = True
    # LightGBM threads (0: all cores). 1 is deterministic and avoids OpenMP spin-waits on a
    # busy shared machine; the training sets here are small.
    num_threads: int = Field(default=1, ge=0)
    # The primary model's label (schemas.models.LABEL_KINDS) and features (empty: all behavioural).
    label: LabelKind = "ordered"
    features: list[str] = Field(default_factory=list)
    # More predictions trained by the same code (schemas/models.py), each scored nightly
    # once its registered model has a champion alias.
    additional: list[ModelDefinition] = Field(default_factory=list)
    # LightGBM objective of regression labels ("spend"); why Tweedie at 1.2: jobs/training/train.py.
    regression_objective: Literal["tweedie", "regression", "regression_l1"] = "tweedie"
    tweedie_variance_power: float = Field(default=1.2, gt=1.0, lt=2.0)
    # Cold-start model (request-time features only): boosting rounds and the segment field.
    coldstart_num_boost_round: int = Field(default=300, ge=1)
    coldstart_segment_field: str = "channel"


class GateSettings(_Section):
    """Margins a challenger must clear on the champion's holdout rows to be promoted."""

    min_auc: float = Field(default=0.55, ge=0.0, le=1.0)
    # Against the champion the gate reads paired bootstrap intervals of challenger minus
    # champion on the same holdout rows (jobs/training/bootstrap.py). The lower bound of
    # the AUC gain must exceed this. 0.002 stands above the noise of a retrain: the same
    # model with another seed gives intervals whose upper bound is at most +0.0014 at five
    # CDNOW dates (python -m bench quality), so a reseed is never promoted, while a real
    # gain of ~0.01 (the model over BG/NBD) clears it with room.
    min_auc_gain: float = Field(default=0.002, ge=0.0)
    # The log loss may not be significantly worse: its increase's lower bound must not exceed this.
    max_log_loss_increase: float = Field(default=0.0, ge=0.0)
    # Regression models (label "spend"): the lower bound of the RMSE reduction (a fraction of
    # the champion's RMSE) must exceed this, and the normalised Gini (the ranking) may not be
    # significantly lower (the upper bound of its change not below minus this).
    min_rmse_reduction: float = Field(default=0.005, ge=0.0, lt=1.0)
    max_gini_decrease: float = Field(default=0.0, ge=0.0)
    # The bootstrap: resamples, two-sided confidence, seed (same rows, same interval).
    bootstrap_resamples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    bootstrap_seed: int = 2005
    # Validation: the logged model's predictions must equal the booster's within this.
    max_prediction_diff: float = Field(default=1e-9, ge=0.0)


class ScheduleSettings(_Section):
    """The nightly and retraining schedules and the score-date partitions they fill."""

    start_date: str = "1997-01-01"
    nightly_cron: str = "0 2 * * *"
    retrain_cron: str = "0 4 * * 0"
    # silver_maintenance (silver.orders back in customer order); away from the night's
    # ingest, whose merge would conflict with the rewrite.
    maintenance_cron: str = "0 12 * * 6"
    timezone: str = "UTC"
    # A night's predictions are late when not written by this time of the next day.
    freshness_deadline_cron: str = "0 6 * * *"
    # Retries for transient failures (database, file system) per step.
    step_retries: int = Field(default=2, ge=0, le=10)
    step_retry_delay_s: float = Field(default=5.0, ge=0)
    # What a fresh Dagster daemon runs on its own: every schedule and sensor starts RUNNING
    # unless switched off here. ``enabled: false`` stops them all, ``sensors_enabled: false``
    # every sensor (the retrain sensor also has ``retrain.sensor_running``). These are
    # defaults: a schedule or sensor started or stopped in the UI keeps that state.
    enabled: bool = True
    nightly_enabled: bool = True
    retrain_enabled: bool = True
    maintenance_enabled: bool = True
    sensors_enabled: bool = True
    freshness_sensor_enabled: bool = True
    # Posts every failed run to ``alerts.webhook_url`` (pipelines/alerts.py).
    run_failure_sensor_enabled: bool = True


class ScoringSettings(_Section):
    """Nightly scoring speed knobs and the monitoring limits a run must stay within to sync."""

    # Rows per Arrow batch handed to the model (bigger batches: fewer Python round trips).
    arrow_batch_rows: int = Field(default=200_000, ge=1_000)
    # Score with each model compiled to native code (lleaves; ~10x LightGBM's speed, equal
    # up to rounding, checked on every task's first rows); off or unavailable: LightGBM.
    compiled_trees: bool = True
    # Where compiled models are kept between nights (empty: <data_dir>/cache/compiled_trees).
    compiled_cache_dir: str = ""
    # Read the feature partition's Parquet row groups with pyarrow in the Python workers
    # (skips Spark's row-by-row copy into Arrow: about half the scoring pass) where that
    # read is exact (jobs/scoring/files.py); elsewhere, or off: Spark's scan.
    pyarrow_feature_reads: bool = True
    # Reasons for each score (jobs/scoring/reasons.py): the largest feature contributions
    # (exact TreeSHAP, in the model's raw score) stored with it, synced and served.
    # all: every row; top_share: the highest-scored reasons_share of each scoring batch;
    # off: none. Every history row records the policy it was scored under.
    reasons: Literal["all", "top_share", "off"] = "all"
    reasons_share: float = Field(default=0.1, gt=0.0, le=1.0)
    reasons_count: int = Field(default=3, ge=1, le=20)
    # Fail the coverage check when fewer than this share of featured customers got a score.
    min_coverage: float = Field(default=0.99, ge=0.0, le=1.0)
    # Fail the drift check when a PSI against the previous run exceeds these limits.
    max_score_psi: float = Field(default=0.25, gt=0.0)
    max_feature_psi: float = Field(default=0.5, gt=0.0)
    # How many features (by model importance) the drift check follows.
    drift_features: int = Field(default=5, ge=0)


class RetrainSettings(_Section):
    """When the retrain sensor starts the ``retrain`` job (the gate still decides promotion)."""

    # Retrain when the latest scoring run's champion score PSI (against the previous scored
    # date, same model version) exceeds this; below the blocking ``scoring.max_score_psi``.
    drift_psi_max: float = Field(default=0.2, gt=0.0)
    # ... or when one of the followed features' PSI exceeds this.
    feature_psi_max: float = Field(default=0.25, gt=0.0)
    # ... or when the champion's realised AUC on the latest matured backtest is below this.
    backtest_auc_min: float = Field(default=0.6, ge=0.0, le=1.0)
    # ... or its realised top-decile lift is below this (1.0: no better than random; 0: off).
    backtest_lift_min: float = Field(default=1.0, ge=0.0)
    # ... or the champion arm's realised AUC on the latest evaluated serving day
    # (monitoring.online_eval) has its whole interval below this, on at least
    # online_eval.min_customers served customers (0: off).
    online_auc_min: float = Field(default=0.6, ge=0.0, le=1.0)
    # The sensor reads three small Delta tables (delta-rs, no Spark) at most this often.
    sensor_interval_s: int = Field(default=60, ge=30)
    # Whether the sensor runs as soon as the Dagster daemon loads the definitions.
    sensor_running: bool = True


class OnlineEvalSettings(_Section):
    """The online evaluation (jobs/monitoring/online_eval.py): each day's served answers
    (monitoring.served) joined to the orders of [served date, + horizon) once it closed."""

    # Poisson bootstrap over served customers: resamples, two-sided confidence, seed.
    resamples: int = Field(default=500, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = 0
    # The retrain sensor judges an arm's online AUC only on at least this many customers.
    min_customers: int = Field(default=500, ge=1)


class LeaseSettings(_Section):
    """One writer at a time: the nightly, sync and retrain runs each hold a lease in the
    serving store (jobs/platform/lease.py)."""

    # A held lease is renewed every ttl_s / 3; a holder that died frees it after ttl_s.
    ttl_s: float = Field(default=120.0, gt=0.0)
    # How long a run waits for a lease another run holds before it fails (0: at once).
    wait_s: float = Field(default=0.0, ge=0.0)
    # A release that fails or times out is retried (backoff 0.2 s doubling to 2 s); one
    # that never reaches the store leaves the lease held until ttl_s, except for its owner.
    release_attempts: int = Field(default=5, ge=1)


class RetentionSettings(_Section):
    """What the weekly maintenance job keeps (jobs/platform/retention.py), and the two
    windows it must never break; checked against each other when the settings load."""

    # VACUUM: a data file no longer in a table's latest version is deleted once it has been
    # out of it this long; also each table's ``delta.deletedFileRetentionDuration``.
    # 8 days: Delta's 7-day minimum, plus a day for a weekly run to land on.
    vacuum_hours: float = Field(default=192.0, gt=0.0)
    # Below Delta's own 7-day safety minimum (168 h: readers of older snapshots and writers
    # whose files are not committed yet) only with this switch.
    allow_short_vacuum: bool = False
    # ``delta.logRetentionDuration``: commits kept in _delta_log (time travel, the change
    # feed, history); Delta removes older ones at its next checkpoint.
    log_retention_days: int = Field(default=30, ge=1)
    # Rollback window: a rollback up to this many nights after the bad one restores the
    # rows from an older version of predictions.current (later: from predictions.history).
    rollback_nights: int = Field(default=3, ge=0)
    # Change-feed window: a sync whose watermark is at most this old stays incremental
    # (the feed from its version is still readable); older, it rebuilds in full.
    sync_feed_hours: float = Field(default=72.0, ge=0.0)
    # MLflow runs of the experiment without a registered model version, started longer
    # ago than this, lose their artifacts (metrics, params and tags stay).
    mlflow_run_days: int = Field(default=30, ge=1)
    # Tasks VACUUM lists a table's folders with (0: Spark's default parallelism, the
    # cores). Delta takes spark.sql.sources.parallelPartitionDiscovery.parallelism,
    # 10,000 by default: 10,000 tasks for a table of three files, 59 s on 2 cores.
    vacuum_listing_parallelism: int = Field(default=0, ge=0)

    @property
    def rollback_hours(self) -> float:
        return 24.0 * self.rollback_nights

    @model_validator(mode="after")
    def _keeps_the_windows(self) -> RetentionSettings:
        problems = []
        if self.vacuum_hours < DELTA_MIN_VACUUM_HOURS and not self.allow_short_vacuum:
            problems.append(
                f"retention.vacuum_hours={self.vacuum_hours:g} is below Delta's 7-day "
                f"minimum ({DELTA_MIN_VACUUM_HOURS} h; retention.allow_short_vacuum=true "
                "allows it)"
            )
        windows = {
            f"the rollback window (retention.rollback_nights={self.rollback_nights}, "
            f"{self.rollback_hours:g} h)": self.rollback_hours,
            "the sync's change-feed window (retention.sync_feed_hours="
            f"{self.sync_feed_hours:g})": self.sync_feed_hours,
        }
        kept = {
            f"retention.vacuum_hours={self.vacuum_hours:g}": self.vacuum_hours,
            f"retention.log_retention_days={self.log_retention_days} "
            f"({24 * self.log_retention_days} h)": 24.0 * self.log_retention_days,
        }
        for keeper, hours in kept.items():
            for window, needed in windows.items():
                if hours < needed:
                    problems.append(f"{keeper} is shorter than {window}")
        if problems:
            raise ValueError(
                "; ".join(problems)
                + ": maintenance would delete what a rollback or an incremental sync reads"
            )
        return self


class AlertSettings(_Section):
    """Where run failures are reported besides the log (empty: log only)."""

    webhook_url: str = ""
    timeout_s: float = Field(default=5.0, gt=0)


class LakehouseSettings(_Section):
    """Ingestion, features and data contracts."""

    # Folder with orders/ and customers/ landing files (CSV or Parquet); empty: bundled CDNOW.
    landing_dir: str = ""
    # A partition whose row count moved more than this fraction from the previous one fails.
    max_row_count_change: float = Field(default=0.5, gt=0)
    # Great Expectations Data Docs (HTML) per validation; empty: <data_dir>/gx_docs.
    data_docs_dir: str = ""
    build_data_docs: bool = True
    # What the nightly silver contracts validate: "batch", the rows the night's merge wrote
    # (its batch id), with the table-level counts from Delta's log the ingest accounting
    # already holds; "table", every row of the table each night (its cost grows with
    # history). The weekly maintenance job validates the whole tables either way.
    silver_contract_scope: Literal["batch", "table"] = "batch"


class ArmSettings(_Section):
    """One arm of a traffic split besides the champion: ``share`` of the customers are served
    the score of ``version`` of the split's model (``challenger``: its registered challenger,
    shadow-scored every night; a version number: that registered version, which the night
    then scores for every customer too)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,31}$")
    share: float = Field(ge=0.0, le=1.0)
    version: str = Field(default="challenger", pattern=r"^(challenger|[1-9][0-9]{0,8})$")


class ExperimentSettings(_Section):
    """A traffic split of one model's answers (an online A/B test; not an MLflow experiment).

    Each customer falls in one arm, decided by a hash of the salt and the customer id
    (``api.experiments.assign``): the same arm on every request and every process, and a
    change of one arm's share moves customers only between that arm and the champion.
    Customers in no listed arm are served the champion (the arm ``champion``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    model: str = ""  # the model whose answers are split; empty: model.name
    salt: str = ""  # empty: the name (a new salt reshuffles every customer)
    arms: list[ArmSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _arms_fit(self) -> ExperimentSettings:
        names = [arm.name for arm in self.arms]
        if "champion" in names or len(set(names)) != len(names):
            raise ValueError(
                f"experiment {self.name!r}: arm names must be distinct and not 'champion' "
                f"(the champion's arm is implicit): {names}"
            )
        slot = 1.0 / len(self.arms)
        over = [f"{arm.name}={arm.share:g}" for arm in self.arms if arm.share > slot + 1e-12]
        if over:
            raise ValueError(
                f"experiment {self.name!r}: with {len(self.arms)} arms each arm's share is at "
                f"most {slot:g} (each arm has its own slice of the hash range, so that a "
                f"share change moves customers only between that arm and the champion): "
                f"{', '.join(over)}"
            )
        return self


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # An answer's ``stale`` flag: its score date is more than this many days before today.
    stale_after_days: int = Field(default=2, ge=0)
    # /metrics counts answers read from synced data (batch scores, priors) whose last
    # completed sync (``sync_state.synced_at``) is older than this
    # (``lakescore_api_stale_answers_total``): a nightly sync that stopped landing.
    sync_stale_after_hours: float = Field(default=36.0, ge=0.0)
    # Used when no prior was synced yet: the answer is still flagged as a fallback.
    default_prior: float = Field(default=0.1, ge=0.0, le=1.0)
    # Auth: sha256 hex digests of the accepted keys (never the keys). Empty: auth off (local dev).
    api_key_sha256: list[str] = Field(default_factory=list)
    api_key_header: str = "X-API-Key"
    # Per-key token bucket (0: off); per-key overrides by sha256 digest.
    rate_limit_per_s: float = Field(default=0.0, ge=0.0)
    rate_limit_burst: int = Field(default=100, ge=1)
    rate_limit_per_key: dict[str, float] = Field(default_factory=dict)
    # Overload and budgets: requests beyond max_concurrency (per process) get a fast 503, and
    # so do new requests while the event loop runs more than shed_after_ms late (0: off).
    # 32 in flight serve ~3,000 req/s at 10 ms, more than one process has CPU for; 64+ let a
    # burst queue at the store until its reads run out of store_timeout_ms (degraded answers).
    max_concurrency: int = Field(default=32, ge=1)
    shed_after_ms: float = Field(default=100.0, ge=0.0)
    max_body_bytes: int = Field(default=65_536, ge=1024)
    max_batch_ids: int = Field(default=1000, ge=1, le=10_000)
    store_timeout_ms: int = Field(default=250, ge=1)
    store_retry_after_s: float = Field(default=1.0, ge=0.0)
    # Reads over store_timeout_ms in a row that mark the store down (an error marks it at once).
    store_trip_after: int = Field(default=3, ge=1)
    # Read cache invalidated by the sync watermark (sync_state delta_version); 0 entries: off.
    cache_max_entries: int = Field(default=200_000, ge=0)
    # Bloom filter of the ids in the last sync: new customers are answered without a DB read.
    known_ids_filter: bool = True
    # Single lookups arriving together share one ``$in`` round trip.
    coalesce_reads: bool = True
    watermark_poll_s: float = Field(default=1.0, gt=0.0)
    # Cold-start model: local copy so the service starts when the registry is down
    # (empty: <data_dir>/api/models).
    model_cache_dir: str = ""
    model_refresh_s: float = Field(default=60.0, gt=0.0)
    model_load_timeout_s: float = Field(default=20.0, gt=0.0)
    # Sampled request log (never carries API keys); empty path: the process log stream.
    # The API's and uvicorn's log lines: one JSON object per line (json) or uvicorn's text.
    log_format: Literal["json", "text"] = "json"
    request_log_sample_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    request_log_path: str = ""
    # Every answer served, appended to the Delta table monitoring.served by delta-rs
    # (api/served_log.py; needs the deltalake package, in the batch and analysts extras):
    # flushed every served_log_flush_s and on shutdown; at most served_log_max_rows
    # buffered, beyond which rows are dropped and counted in /metrics.
    served_log: bool = False
    served_log_flush_s: float = Field(default=30.0, gt=0.0)
    served_log_max_rows: int = Field(default=200_000, ge=1)
    # Traffic splits (A/B tests of models on live answers): at most one per model.
    experiments: list[ExperimentSettings] = Field(default_factory=list)


class Settings(BaseSettings):
    """Every knob of lakescore, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="LAKESCORE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    env: str = "local"
    data_dir: str = "data"
    spark: SparkSettings = Field(default_factory=SparkSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    online_eval: OnlineEvalSettings = Field(default_factory=OnlineEvalSettings)
    lease: LeaseSettings = Field(default_factory=LeaseSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    lakehouse: LakehouseSettings = Field(default_factory=LakehouseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = _yaml_path()
        # LAKESCORE_* before the conventional variables: the project's own variable is the
        # more specific one, and libraries export the conventional ones themselves (MLflow's
        # set_tracking_uri sets MLFLOW_TRACKING_URI for the rest of the process).
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _ConventionalEnvSource(settings_cls),
        ]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _grace_outlasts_the_poll(self) -> Settings:
        if self.mongo.drop_grace_s <= self.api.watermark_poll_s:
            raise ValueError(
                f"mongo.drop_grace_s ({self.mongo.drop_grace_s:g} s) must be longer than "
                f"api.watermark_poll_s ({self.api.watermark_poll_s:g} s): an API still reading "
                "a replaced collection would find it dropped"
            )
        return self

    @model_validator(mode="after")
    def _experiments_name_models(self) -> Settings:
        if not self.api.experiments:
            return self  # model_definitions refuses duplicate names where they are used
        names = [d.name for d in model_definitions(self)]
        split: list[str] = []
        for experiment in self.api.experiments:
            model = experiment.model or self.model.name
            split.append(model)
            if model not in names:
                raise ValueError(
                    f"api.experiments {experiment.name!r} splits {model!r}, which is not a "
                    f"configured model (configured: {', '.join(names)})"
                )
        twice = sorted({m for m in split if split.count(m) > 1})
        if twice:
            raise ValueError(f"api.experiments: more than one experiment splits {twice}")
        experiments = [e.name for e in self.api.experiments]
        if len(set(experiments)) != len(experiments):
            raise ValueError(f"api.experiments: names defined twice: {experiments}")
        return self

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        self.lake.root = _absolute(self.lake.root)
        self.mlflow.artifact_root = _absolute(self.mlflow.artifact_root)
        self.mongo.local_storage_path = _absolute(self.mongo.local_storage_path)
        self.data_dir = _absolute(self.data_dir)
        prefix = "sqlite:///"
        if self.mlflow.tracking_uri.startswith(prefix):
            db_path = self.mlflow.tracking_uri[len(prefix) :]
            self.mlflow.tracking_uri = prefix + _absolute(db_path)
        return self

    def table_path(self, table: str) -> str:
        """Where a table such as ``predictions.history`` lives under the lake root."""
        schema, _, name = table.partition(".")
        return f"{self.lake.root.rstrip('/')}/{schema}/{name}"


class _ConventionalEnvSource(PydanticBaseSettingsSource):
    """The well-known variables operators already set: MONGO_URI, MLFLOW_TRACKING_URI, SPARK_MASTER."""

    _MAP = {
        "MONGO_URI": ("mongo", "uri"),
        "MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri"),
        "SPARK_MASTER": ("spark", "master"),
    }

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, dict[str, str]] = {}
        for var, (section, key) in self._MAP.items():
            value = os.environ.get(var)
            if value:
                out.setdefault(section, {})[key] = value
        return out


def _yaml_path() -> Path | None:
    conf_dir = Path(os.environ.get(CONF_DIR_ENV, "conf"))
    env_name = os.environ.get(ENV_NAME_ENV, "local")
    path = conf_dir / f"{env_name}.yaml"
    if path.exists():
        return path
    if ENV_NAME_ENV in os.environ:
        raise FileNotFoundError(f"{ENV_NAME_ENV}={env_name} but {path} does not exist")
    return None


def _absolute(path: str) -> str:
    if "://" in path or path == ":memory:":
        return path
    return str(Path(path).expanduser().resolve())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use (never at import)."""
    return Settings()


def primary_definition(settings: Settings) -> ModelDefinition:
    """The definition the nightly scoring job serves (``settings.model.name``)."""
    cfg = settings.model
    return ModelDefinition(
        name=cfg.name,
        label=cfg.label,
        horizon_days=cfg.horizon_days,
        features=tuple(cfg.features),
        description="primary model (scored every night)",
    )


def model_definitions(settings: Settings) -> list[ModelDefinition]:
    """Every configured model: the primary one first, then ``model.additional``."""
    out = [primary_definition(settings), *settings.model.additional]
    names = [d.name for d in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"model names defined twice: {', '.join(duplicates)}")
    return out


def find_definition(settings: Settings, name: str) -> ModelDefinition:
    for definition in model_definitions(settings):
        if definition.name == name:
            return definition
    known = ", ".join(d.name for d in model_definitions(settings))
    raise KeyError(f"no model definition named {name!r} (configured: {known})")


def experiment_of(settings: Settings, model_name: str) -> ExperimentSettings | None:
    """The traffic split of ``model_name`` (``api.experiments``), if any."""
    for experiment in settings.api.experiments:
        if (experiment.model or settings.model.name) == model_name:
            return experiment
    return None


def pinned_versions(settings: Settings, model_name: str) -> list[str]:
    """The registered versions of ``model_name`` that a traffic split serves by number: the
    night scores them for every customer beside the champion and the challenger."""
    experiment = experiment_of(settings, model_name)
    if experiment is None:
        return []
    return list(dict.fromkeys(a.version for a in experiment.arms if a.version != "challenger"))
