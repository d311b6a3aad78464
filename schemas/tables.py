"""Names and schemas of every Delta table lakescore writes (the contracts between jobs)."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.features import ALL_FEATURES


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    name: str  # schema.table, as registered in the Spark SQL catalog
    ddl: str  # Spark DDL of the columns
    partition_by: tuple[str, ...] = ()
    description: str = ""
    # The order rows are written in within each data file, where the writer controls it
    # (the first, bulk load of a silver table; a merge writes in its join's order).
    sort_within_files: tuple[str, ...] = ()
    # Delta's data-skipping statistics (per-file min/max in the log) only for these
    # columns; empty: Delta's default, the first 32. Why few: README, "Querying
    # predictions".
    stats_columns: tuple[str, ...] = ()
    change_data_feed: bool = False

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.fields]

    @property
    def fields(self) -> list[tuple[str, str]]:
        """``(name, type)`` of each column, in order (commas inside ``ARRAY<STRUCT<...>>``
        types are not separators)."""
        parts, depth, start = [], 0, 0
        for i, char in enumerate(self.ddl):
            depth += (char == "<") - (char == ">")
            if char == "," and depth == 0:
                parts.append(self.ddl[start:i])
                start = i + 1
        parts.append(self.ddl[start:])
        pairs = [part.strip().split(" ", 1) for part in parts]
        return [(name, kind.strip()) for name, kind in pairs]

    @property
    def properties(self) -> dict[str, str]:
        """The Delta table properties this spec asks for (``ensure_table`` applies them)."""
        props = {}
        if self.change_data_feed:
            props["delta.enableChangeDataFeed"] = "true"
        if self.stats_columns:
            props["delta.dataSkippingStatsColumns"] = ",".join(self.stats_columns)
        return props


BRONZE_ORDERS = TableSpec(
    name="bronze.orders",
    ddl=(
        "order_id STRING, customer_id STRING, order_date STRING, quantity STRING, amount STRING, "
        "line_no BIGINT, source_file STRING, file_fingerprint STRING, "
        "ingested_at TIMESTAMP, batch_id STRING"
    ),
    description="Every raw order row as it arrived, with ingest metadata.",
)

SILVER_ORDERS = TableSpec(
    name="silver.orders",
    ddl=(
        "order_id STRING, customer_id STRING, order_date DATE, quantity INT, "
        "amount DOUBLE, batch_id STRING"
    ),
    description="Typed orders, one row per order id.",
    # Customer, then order date: the feature build's window sorts in this order, and
    # presorted runs make that sort a merge (jobs.features.order_gaps).
    sort_within_files=("customer_id", "order_date"),
)

QUARANTINE_ORDERS = TableSpec(
    name="bronze.orders_quarantine",
    ddl=(
        "order_id STRING, customer_id STRING, order_date STRING, quantity STRING, amount STRING, "
        "line_no BIGINT, source_file STRING, file_fingerprint STRING, batch_id STRING, "
        "reason STRING"
    ),
    description="Rows that broke the orders contract, with the reason; never in silver.",
)

CUSTOMER_FEATURES = TableSpec(
    name="gold.customer_features",
    ddl=", ".join(
        ["customer_id STRING", "as_of_date DATE"] + [f"{f.name} {f.dtype}" for f in ALL_FEATURES]
    ),
    partition_by=("as_of_date",),
    description="Point-in-time customer features: only orders strictly before as_of_date.",
    # A partition is read whole (scoring, training, contracts): only the id is filtered on.
    stats_columns=("customer_id",),
)

# Reasons for a score (jobs/scoring/reasons.py): the largest feature contributions, largest
# first (SHAP values in the model's raw score; value null when the feature was missing),
# null when the policy gave none; the policy the row was scored under (all, top_share:<share>,
# off; null for rows scored before reasons existed).
REASONS_DDL = "ARRAY<STRUCT<feature: STRING, contribution: DOUBLE, value: DOUBLE>>"
_REASONS = f"reasons {REASONS_DDL}, reasons_policy STRING"

# The same night's scores of the model's other versions, for traffic splits
# (api.experiments): the challenger's version (null: none scored), and the score of every
# version scored beside the champion (the challenger, versions a split pins) by version.
_SHADOW = "challenger_version STRING, shadow_scores MAP<STRING, DOUBLE>"
SHADOW_COLUMNS = ("challenger_version", "shadow_scores")

PREDICTIONS_HISTORY = TableSpec(
    name="predictions.history",
    ddl=(
        "customer_id STRING, model_name STRING, model_version STRING, model_role STRING, "
        "score DOUBLE, score_date DATE, scored_at TIMESTAMP, run_id STRING, "
        f"feature_table_version BIGINT, {_REASONS}"
    ),
    partition_by=("score_date",),
    description="Append-only history: every score ever served or shadowed.",
    stats_columns=("customer_id", "score"),  # reads of one customer, score ranges
)

PREDICTIONS_CURRENT = TableSpec(
    name="predictions.current",
    ddl=(
        "customer_id STRING, model_name STRING, model_version STRING, score DOUBLE, "
        f"score_date DATE, scored_at TIMESTAMP, run_id STRING, feature_table_version BIGINT, "
        f"{_REASONS}, {_SHADOW}"
    ),
    # Partitioned by model: a night replaces its model's files whole, so the change data
    # feed is derived from the files added and removed instead of written out row by row
    # (a replaceWhere on a non-partition column costs 3x as much with the feed on).
    partition_by=("model_name",),
    description=(
        "Latest champion score per customer and model (with the same night's challenger and "
        "pinned versions' scores); change data feed on."
    ),
    change_data_feed=True,  # the sync reads what changed since its watermark
    # newest_score_date reads the score date's maximum from the log.
    stats_columns=("customer_id", "score_date", "score"),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    BRONZE_ORDERS,
    QUARANTINE_ORDERS,
    SILVER_ORDERS,
    CUSTOMER_FEATURES,
    PREDICTIONS_HISTORY,
    PREDICTIONS_CURRENT,
)

# Customer profiles: landing files -> bronze (raw) -> silver (typed, one row per customer).
BRONZE_CUSTOMERS = TableSpec(
    name="bronze.customers",
    ddl=(
        "customer_id STRING, signup_date STRING, country STRING, channel STRING, device STRING, "
        "line_no BIGINT, source_file STRING, file_fingerprint STRING, "
        "ingested_at TIMESTAMP, batch_id STRING"
    ),
    description="Every raw customer-profile row as it arrived, with ingest metadata.",
)

QUARANTINE_CUSTOMERS = TableSpec(
    name="bronze.customers_quarantine",
    ddl=(
        "customer_id STRING, signup_date STRING, country STRING, channel STRING, device STRING, "
        "line_no BIGINT, source_file STRING, file_fingerprint STRING, batch_id STRING, "
        "reason STRING"
    ),
    description="Customer rows that broke the customers contract, with the reason.",
)

SILVER_CUSTOMERS = TableSpec(
    name="silver.customers",
    ddl=(
        "customer_id STRING, signup_date DATE, country STRING, channel STRING, device STRING, "
        "batch_id STRING"
    ),
    description="Typed customer profiles, one row per customer id (latest file wins).",
)

ALL_TABLES = (*ALL_TABLES, BRONZE_CUSTOMERS, QUARANTINE_CUSTOMERS, SILVER_CUSTOMERS)

# Model gate: one row per gate decision, for analysts (append-only).
GATE_DECISIONS = TableSpec(
    name="models.gate_decisions",
    ddl=(
        "decided_at TIMESTAMP, model_name STRING, candidate_version STRING, "
        "champion_version STRING, verdict STRING, promoted BOOLEAN, reason STRING, "
        "score_date DATE, holdout_as_of_date DATE, holdout_rows BIGINT, "
        "candidate_roc_auc DOUBLE, candidate_log_loss DOUBLE, candidate_lift_top_decile DOUBLE, "
        "champion_roc_auc DOUBLE, champion_log_loss DOUBLE, champion_lift_top_decile DOUBLE, "
        "baseline_prior_roc_auc DOUBLE, baseline_recency_frequency_roc_auc DOUBLE, "
        "baseline_recency_frequency_lift_top_decile DOUBLE, mlflow_run_id STRING, "
        "metrics_json STRING"
    ),
    description="Every champion/challenger gate decision: metrics of both, verdict, reason.",
)

ALL_TABLES = (*ALL_TABLES, GATE_DECISIONS)

# Scoring monitoring: one row per scoring run; realised quality once labels mature.
SCORE_RUNS = TableSpec(
    name="monitoring.score_runs",
    ddl=(
        "run_id STRING, score_date DATE, model_name STRING, model_version STRING, "
        "customers_known BIGINT, customers_scored BIGINT, coverage DOUBLE, "
        "score_p01 DOUBLE, score_p10 DOUBLE, score_p50 DOUBLE, score_p90 DOUBLE, "
        "score_p99 DOUBLE, score_mean DOUBLE, previous_score_date DATE, score_psi DOUBLE, "
        "feature_psi_json STRING, duration_s DOUBLE, feature_table_version BIGINT, "
        "history_version BIGINT, recorded_at TIMESTAMP, rows_by_model_json STRING, audit_json STRING"
    ),
    description=(
        "One row per scoring run: coverage, score quantiles, drift against the previous run, "
        "and each model's champion rows and distinct customers in history (the audit's counts)."
    ),
)

PUBLICATIONS = TableSpec(
    name="monitoring.publications",
    ddl=(
        "run_id STRING, score_date DATE, modes_json STRING, history_version BIGINT, "
        "current_version BIGINT, how STRING, published_at TIMESTAMP"
    ),
    description=(
        "One row per scoring run published to predictions.current (append-only): a run "
        "in monitoring.score_runs without a row here failed its audit and was held back."
    ),
)

BACKTESTS = TableSpec(
    name="monitoring.backtests",
    ddl=(
        "score_date DATE, model_name STRING, model_version STRING, model_role STRING, "
        "horizon_days INT, customers BIGINT, positives BIGINT, base_rate DOUBLE, auc DOUBLE, "
        "lift_top_decile DOUBLE, computed_at TIMESTAMP"
    ),
    description="Realised AUC and lift of a score date's predictions once its labels matured.",
)

# Written by the lookup API (api/served_log.py, delta-rs), not by Spark: every answer served.
SERVED = TableSpec(
    name="monitoring.served",
    ddl=(
        "served_at TIMESTAMP, request_id STRING, route STRING, customer_id STRING, "
        "experiment STRING, arm STRING, model_name STRING, model_version STRING, "
        "score DOUBLE, source STRING, degraded BOOLEAN, latency_ms DOUBLE, served_date DATE"
    ),
    partition_by=("served_date",),
    description=(
        "Every prediction the lookup API answered (api.served_log): customer, experiment "
        "and arm, model version, score, source, latency; appended by each API process."
    ),
)

# Served answers judged by what the customers did next (jobs/monitoring/online_eval.py).
ONLINE_EVAL = TableSpec(
    name="monitoring.online_eval",
    ddl=(
        "served_date DATE, model_name STRING, model_version STRING, experiment STRING, "
        "arm STRING, source STRING, horizon_days INT, customers BIGINT, answers BIGINT, positives BIGINT, "
        "base_rate DOUBLE, mean_score DOUBLE, auc DOUBLE, auc_low DOUBLE, auc_high DOUBLE, "
        "lift_top_decile DOUBLE, lift_low DOUBLE, lift_high DOUBLE, "
        "observed_to_expected DOUBLE, oe_low DOUBLE, oe_high DOUBLE, calibration_error DOUBLE, "
        "confidence DOUBLE, resamples INT, computed_at TIMESTAMP"
    ),
    description=(
        "Realised ROC AUC, top-decile lift and calibration (observed / expected rate, ECE) "
        "of the answers served on one day, per model, version, experiment, arm and source, with "
        "bootstrap intervals, once the label window [served date, + horizon) closed."
    ),
)

ALL_TABLES = (*ALL_TABLES, SCORE_RUNS, PUBLICATIONS, BACKTESTS, SERVED, ONLINE_EVAL)
