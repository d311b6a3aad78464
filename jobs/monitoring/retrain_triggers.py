"""When to retrain besides the weekly schedule: drift or realised quality past a limit.

``retrain_reason`` judges the latest ``monitoring.score_runs`` row (score and
feature PSI against the previous scored date) and the latest champion row of
``monitoring.backtests`` (realised AUC and top-decile lift once labels matured) and the
champion arm's latest ``monitoring.online_eval`` row (the served answers' realised AUC
with its interval) against the ``retrain:`` settings. ``latest_monitoring`` and
``latest_online`` read those rows with delta-rs (no Spark, no JVM), cheap enough for a
sensor that ticks every minute.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

from jobs.platform import CHAMPION
from schemas.settings import RetrainSettings, Settings
from schemas.tables import BACKTESTS, ONLINE_EVAL, SCORE_RUNS


@dataclass(frozen=True, kw_only=True)
class RunDrift:
    """The drift of one scoring run (a ``monitoring.score_runs`` row)."""

    run_id: str
    score_date: dt.date
    model_version: str
    previous_score_date: dt.date | None
    previous_model_version: str | None  # the version that scored the previous date
    score_psi: float | None
    feature_psi: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class BacktestQuality:
    """The champion's realised quality on one matured score date (a ``monitoring.backtests`` row)."""

    score_date: dt.date
    model_version: str
    auc: float
    lift_top_decile: float

    @property
    def key(self) -> str:
        return f"{self.score_date.isoformat()}-v{self.model_version}"


@dataclass(frozen=True, kw_only=True)
class OnlineQuality:
    """The champion arm's served answers on one evaluated day (a ``monitoring.online_eval`` row)."""

    served_date: dt.date
    model_version: str
    customers: int
    auc: float
    auc_low: float
    auc_high: float

    @property
    def key(self) -> str:
        return f"{self.served_date.isoformat()}-v{self.model_version}"


@dataclass(frozen=True, kw_only=True)
class RetrainReason:
    run_key: str  # one per triggering score run / backtest: a sensor fires once for each
    text: str


def drift_problems(run: RunDrift, limits: RetrainSettings) -> list[str]:
    """The PSI limits the run crosses. Score PSI counts only when the same model version
    scored the previous date (a new champion moves the scores without any drift)."""
    out = []
    same_model = run.previous_model_version in (None, run.model_version)
    if same_model and run.score_psi is not None and run.score_psi > limits.drift_psi_max:
        out.append(f"score PSI {run.score_psi:.3f} > {limits.drift_psi_max}")
    out += [
        f"{name} PSI {psi:.3f} > {limits.feature_psi_max}"
        for name, psi in sorted(run.feature_psi.items())
        if psi > limits.feature_psi_max
    ]
    return out


def backtest_problems(
    backtest: BacktestQuality, limits: RetrainSettings, *, champion_version: str | None
) -> list[str]:
    """The quality floors the backtested champion falls below (none once it was replaced)."""
    if champion_version is not None and backtest.model_version != champion_version:
        return []
    out = []
    if not math.isnan(backtest.auc) and backtest.auc < limits.backtest_auc_min:
        out.append(f"realised AUC {backtest.auc:.3f} < {limits.backtest_auc_min}")
    lift = backtest.lift_top_decile
    if not math.isnan(lift) and lift < limits.backtest_lift_min:
        out.append(f"realised top-decile lift {lift:.2f} < {limits.backtest_lift_min}")
    return out


def online_problems(
    online: OnlineQuality,
    limits: RetrainSettings,
    *,
    champion_version: str | None,
    min_customers: int,
) -> list[str]:
    """The online floor the champion arm falls below: its whole AUC interval under
    ``online_auc_min``, on enough customers (a noisy small day never starts a retrain)."""
    if limits.online_auc_min <= 0 or online.customers < min_customers:
        return []
    if champion_version is not None and online.model_version != champion_version:
        return []
    if math.isnan(online.auc_high) or online.auc_high >= limits.online_auc_min:
        return []
    return [
        f"online AUC {online.auc:.3f} [{online.auc_low:.3f}, {online.auc_high:.3f}] "
        f"< {limits.online_auc_min} on {online.customers:,} served customers"
    ]


def retrain_reason(
    *,
    run: RunDrift | None,
    backtest: BacktestQuality | None,
    limits: RetrainSettings,
    champion_version: str | None = None,
    online: OnlineQuality | None = None,
    online_min_customers: int = 1,
) -> RetrainReason | None:
    """Why to retrain now, from the rows not judged before (None: nothing crossed a limit).

    ``champion_version`` is the version of the latest scoring run: a backtest of a model
    that is no longer the champion does not start a retrain."""
    keys: list[str] = []
    parts: list[str] = []
    if run is not None and (problems := drift_problems(run, limits)):
        keys.append(f"drift-{run.run_id}")
        against = f" against {run.previous_score_date}" if run.previous_score_date else ""
        parts.append(
            f"drift in scoring run {run.run_id} of {run.score_date} "
            f"(model v{run.model_version}){against}: " + "; ".join(problems)
        )
    if backtest is not None and (
        problems := backtest_problems(backtest, limits, champion_version=champion_version)
    ):
        keys.append(f"backtest-{backtest.key}")
        parts.append(
            f"backtest of {backtest.score_date} (model v{backtest.model_version}): "
            + "; ".join(problems)
        )
    if online is not None and (
        problems := online_problems(
            online, limits, champion_version=champion_version, min_customers=online_min_customers
        )
    ):
        keys.append(f"online-{online.key}")
        parts.append(
            f"answers served on {online.served_date} (model v{online.model_version}): "
            + "; ".join(problems)
        )
    if not parts:
        return None
    return RetrainReason(run_key="retrain-" + "-".join(keys), text=" | ".join(parts))


def _delta_rows(settings: Settings, name: str, columns: list[str]) -> list[dict[str, Any]] | None:
    """The model's rows of a monitoring table, read with delta-rs (None: no table yet)."""
    from deltalake import DeltaTable

    path = settings.table_path(name).replace("s3a://", "s3://", 1)
    if not DeltaTable.is_deltatable(path):
        return None
    table = DeltaTable(path).to_pyarrow_table(
        columns=columns, filters=[("model_name", "=", settings.model.name)]
    )
    return table.to_pylist()


def latest_monitoring(settings: Settings) -> tuple[RunDrift | None, BacktestQuality | None]:
    """The latest scoring run (newest score date, then newest row) and the latest champion
    backtest of the configured model; None where the table has no such row (or no table)."""
    run_columns = ["run_id", "score_date", "model_name", "model_version", "previous_score_date"]
    runs = _delta_rows(
        settings, SCORE_RUNS.name, [*run_columns, "score_psi", "feature_psi_json", "recorded_at"]
    )
    run = None
    if runs:
        runs.sort(key=lambda r: (r["score_date"], r["recorded_at"]))
        row = runs[-1]
        before = [r for r in runs if r["score_date"] == row["previous_score_date"]]
        run = RunDrift(
            run_id=row["run_id"],
            score_date=row["score_date"],
            model_version=row["model_version"],
            previous_score_date=row["previous_score_date"],
            previous_model_version=before[-1]["model_version"] if before else None,
            score_psi=row["score_psi"],
            # An undefined PSI (no rows on either date) is recorded as null: nothing to compare.
            feature_psi={
                k: float(v) for k, v in json.loads(row["feature_psi_json"]).items() if v is not None
            },
        )
    tests = _delta_rows(
        settings,
        BACKTESTS.name,
        ["score_date", "model_name", "model_version", "model_role", "auc", "lift_top_decile"],
    )
    champion = [r for r in tests or [] if r["model_role"] == CHAMPION]
    backtest = None
    if champion:
        row = max(champion, key=lambda r: r["score_date"])
        backtest = BacktestQuality(
            score_date=row["score_date"],
            model_version=row["model_version"],
            auc=math.nan if row["auc"] is None else row["auc"],
            lift_top_decile=math.nan if row["lift_top_decile"] is None else row["lift_top_decile"],
        )
    return run, backtest


def latest_online(settings: Settings) -> OnlineQuality | None:
    """The champion arm's row of the latest evaluated serving day of the configured model
    (``arm`` champion, or no split; batch answers of a registered version; the version
    with the most customers when the day saw two); None without one."""
    rows = _delta_rows(
        settings,
        ONLINE_EVAL.name,
        [
            "served_date",
            "model_name",
            "model_version",
            "arm",
            "source",
            "customers",
            "auc",
            "auc_low",
            "auc_high",
        ],
    )
    champion = [
        r
        for r in rows or []
        if r["arm"] in (None, CHAMPION) and r["source"] == "batch" and r["model_version"]
    ]
    if not champion:
        return None
    day = max(r["served_date"] for r in champion)
    row = max((r for r in champion if r["served_date"] == day), key=lambda r: r["customers"])

    def number(key: str) -> float:
        return math.nan if row[key] is None else float(row[key])

    return OnlineQuality(
        served_date=row["served_date"],
        model_version=row["model_version"],
        customers=int(row["customers"]),
        auc=number("auc"),
        auc_low=number("auc_low"),
        auc_high=number("auc_high"),
    )
