"""The retrain sensor: starts the ``retrain`` job when drift or realised quality crosses a limit.

Each tick reads the latest ``monitoring.score_runs``, ``monitoring.backtests`` and
``monitoring.online_eval`` rows with delta-rs (no Spark session in the daemon), judges
only the rows it has not judged before (the cursor holds the last run id, backtest and
online evaluation seen), and asks
for at most one retrain per triggering row (the run key names it). The champion /
challenger gate inside the retrain run still decides whether anything is promoted.
"""

from __future__ import annotations

import datetime as dt
import json

from dagster import (
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from jobs.monitoring import (
    BacktestQuality,
    OnlineQuality,
    RunDrift,
    latest_monitoring,
    latest_online,
    retrain_reason,
)
from pipelines.resources import LakescoreResource
from pipelines.schedules import RETRAIN_RUN_CONFIG, sensor_status
from schemas.settings import Settings
from schemas.tables import BACKTESTS, ONLINE_EVAL, SCORE_RUNS

RETRAIN_SENSOR = "retrain_on_drift_sensor"
REASON_TAG = "lakescore/retrain_reason"
MAX_TAG_CHARS = 2000


def describe(
    run: RunDrift | None, backtest: BacktestQuality | None, online: OnlineQuality | None = None
) -> str:
    """The latest rows in a few words (for skip messages)."""
    parts = []
    if run is not None:
        psi = "n/a" if run.score_psi is None else f"{run.score_psi:.3f}"
        top = max(run.feature_psi.values(), default=0.0)
        parts.append(
            f"run {run.run_id} of {run.score_date}: score PSI {psi}, max feature PSI {top:.3f}"
        )
    if backtest is not None:
        parts.append(
            f"backtest of {backtest.score_date} (v{backtest.model_version}): "
            f"AUC {backtest.auc:.3f}, lift {backtest.lift_top_decile:.2f}"
        )
    if online is not None:
        parts.append(
            f"answers of {online.served_date} (v{online.model_version}): online AUC "
            f"{online.auc:.3f} on {online.customers:,} customers"
        )
    return "; ".join(parts)


def retrain_partition(
    run: RunDrift | None,
    backtest: BacktestQuality | None,
    *,
    horizon_days: int,
    online: OnlineQuality | None = None,
) -> str:
    """The score date to retrain for: the latest scored date (or when the backtest or the
    online evaluation matured)."""
    if run is not None:
        return run.score_date.isoformat()
    matured = backtest.score_date if backtest is not None else None
    if online is not None and (matured is None or online.served_date > matured):
        matured = online.served_date
    assert matured is not None
    return (matured + dt.timedelta(days=horizon_days)).isoformat()


def build_retrain_sensor(
    *, retrain: UnresolvedAssetJobDefinition, settings: Settings
) -> SensorDefinition:
    cfg = settings.retrain

    @sensor(
        name=RETRAIN_SENSOR,
        job=retrain,
        minimum_interval_seconds=cfg.sensor_interval_s,
        default_status=sensor_status(settings.schedule, cfg.sensor_running),
        description=(
            "Retrain when the latest scoring run's PSI exceeds retrain.drift_psi_max / "
            "feature_psi_max, or the champion's latest backtest falls below "
            "retrain.backtest_auc_min / backtest_lift_min, or the champion arm's online "
            "AUC interval lies below retrain.online_auc_min; the gate decides promotion."
        ),
    )
    def retrain_on_drift_sensor(
        context: SensorEvaluationContext, lakescore: LakescoreResource
    ) -> SensorResult | SkipReason:
        current = lakescore.settings()
        run, backtest = latest_monitoring(current)
        online = latest_online(current)
        if run is None and backtest is None and online is None:
            return SkipReason(
                f"no {SCORE_RUNS.name}, champion {BACKTESTS.name} or {ONLINE_EVAL.name} "
                f"rows for model "
                f"{current.model.name!r} yet: nothing to judge"
            )
        seen = json.loads(context.cursor) if context.cursor else {}
        new_run = run if run is not None and run.run_id != seen.get("score_run") else None
        new_backtest = (
            backtest if backtest is not None and backtest.key != seen.get("backtest") else None
        )
        new_online = online if online is not None and online.key != seen.get("online") else None
        if new_run is None and new_backtest is None and new_online is None:
            return SkipReason(
                f"nothing new since the last tick ({describe(run, backtest, online)})"
            )
        cursor = json.dumps(
            {
                "score_run": run.run_id if run else None,
                "backtest": backtest.key if backtest else None,
                "online": online.key if online else None,
            }
        )
        reason = retrain_reason(
            run=new_run,
            backtest=new_backtest,
            limits=current.retrain,
            champion_version=run.model_version if run else None,
            online=new_online,
            online_min_customers=current.online_eval.min_customers,
        )
        if reason is None:
            return SensorResult(
                skip_reason=SkipReason(
                    f"within the retrain limits: {describe(new_run, new_backtest, new_online)}"
                ),
                cursor=cursor,
            )
        context.log.info(f"retrain: {reason.text}")
        request = RunRequest(
            run_key=reason.run_key,
            partition_key=retrain_partition(
                run, backtest, horizon_days=current.model.horizon_days, online=online
            ),
            run_config=RETRAIN_RUN_CONFIG,
            tags={REASON_TAG: reason.text[:MAX_TAG_CHARS]},
        )
        return SensorResult(run_requests=[request], cursor=cursor)

    return retrain_on_drift_sensor
