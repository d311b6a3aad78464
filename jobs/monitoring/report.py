"""The nightly HTML report: coverage, score distribution, drift, champion vs challenger, the
latest gate decision with its interval, sync.

Self-contained HTML (plots embedded as PNG), written to
``<data_dir>/reports/<score_date>/nightly.html`` and linked from the Dagster run.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.monitoring.psi import population_stability_index
from jobs.platform import read_table, table_exists, table_version
from schemas.coldstart import COLDSTART_SUFFIX
from schemas.features import FEATURE_NAMES
from schemas.settings import Settings
from schemas.tables import (
    CUSTOMER_FEATURES,
    GATE_DECISIONS,
    ONLINE_EVAL,
    PREDICTIONS_CURRENT,
    PREDICTIONS_HISTORY,
)

# The sync's figures the report shows, in this order, with their labels.
SYNC_ROWS = {
    "mode": "mode",
    "reason": "why this mode",
    "documents": "documents in the collection",
    "upserted": "documents written",
    "deleted": "documents deleted",
    "verification": "verification",
    "verified_sample": "documents compared with Delta",
    "mismatches": "mismatches",
    "delta_version": "synced version of predictions.current",
    "lag_versions": "versions of predictions.current not yet synced",
    "seconds": "seconds",
}


@dataclass(kw_only=True)
class NightReport:
    score_date: dt.date
    path: Path
    customers_with_features: int
    customers_scored: int
    previous_score_date: dt.date | None
    score_psi: float | None
    feature_psi: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, float] | None = None
    gate: dict[str, str] | None = None  # the primary model's latest gate decision
    # The serving champion's calibration (jobs/training/calibration.py) and holdout curve.
    calibration: dict[str, Any] | None = None
    # The latest evaluated serving day's rows of monitoring.online_eval (primary model and
    # its cold-start model), one dict per model version, experiment, arm and source.
    online: list[dict[str, Any]] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return (
            self.customers_scored / self.customers_with_features
            if self.customers_with_features
            else 0.0
        )


def build_night_report(
    spark: SparkSession,
    settings: Settings,
    *,
    score_date: dt.date,
    sync: dict[str, Any] | None = None,
) -> NightReport:
    """Write the night's report. ``sync``: the night's sync figures (``SyncResult.metadata``);
    the report adds the lag, versions of ``predictions.current`` committed since."""
    if sync is not None and "delta_version" in sync:
        latest = table_version(spark, settings, PREDICTIONS_CURRENT)
        sync = {**sync, "lag_versions": latest - int(sync["delta_version"])}
    history = read_table(spark, settings, PREDICTIONS_HISTORY).where(
        F.col("model_name") == settings.model.name
    )
    scores = _scores(history, score_date)
    previous = _previous_date(history, score_date)
    prev_scores = _scores(history, previous) if previous else pd.DataFrame()
    features = _features(spark, settings, score_date)
    prev_features = _features(spark, settings, previous) if previous else pd.DataFrame()

    champion = scores[scores["model_role"] == "champion"]
    challenger = scores[scores["model_role"] == "challenger"]
    prev_champion = (
        prev_scores[prev_scores["model_role"] == "champion"] if previous else prev_scores
    )
    score_psi = (
        population_stability_index(prev_champion["score"].to_numpy(), champion["score"].to_numpy())
        if previous and not prev_champion.empty and not champion.empty
        else None
    )
    feature_psi = (
        {
            name: population_stability_index(
                prev_features[name].to_numpy(float), features[name].to_numpy(float)
            )
            for name in FEATURE_NAMES
        }
        if not prev_features.empty and not features.empty
        else {}
    )
    versus = _champion_vs_challenger(champion, challenger)
    path = Path(settings.data_dir) / "reports" / score_date.isoformat() / "nightly.html"
    report = NightReport(
        score_date=score_date,
        path=path,
        customers_with_features=len(features),
        customers_scored=champion["customer_id"].nunique() if not champion.empty else 0,
        previous_score_date=previous,
        score_psi=score_psi,
        feature_psi=feature_psi,
        challenger=versus,
        gate=latest_gate_decision(spark, settings),
        calibration=champion_calibration(
            spark,
            settings,
            version=str(champion["model_version"].iloc[0]) if not champion.empty else None,
        ),
        online=latest_online_rows(spark, settings),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        _render(
            report, champion=champion, prev_champion=prev_champion, challenger=challenger, sync=sync
        )
    )
    return report


def latest_online_rows(spark: SparkSession, settings: Settings) -> list[dict[str, Any]]:
    """The rows of the latest serving day evaluated for the primary model (no table: none)."""
    if not table_exists(spark, settings, ONLINE_EVAL):
        return []
    names = [settings.model.name, settings.model.name + COLDSTART_SUFFIX]
    table = read_table(spark, settings, ONLINE_EVAL).where(F.col("model_name").isin(names))
    latest = table.agg(F.max("served_date")).first()
    if latest is None or latest[0] is None:
        return []
    rows = (
        table.where(F.col("served_date") == F.lit(latest[0]))
        .orderBy("model_name", "experiment", "arm", "source", "model_version")
        .collect()
    )
    return [r.asDict() for r in rows]


def _online_section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return (
            "<h2>Online evaluation</h2><p>No serving day has been evaluated yet "
            "(api.served_log off, or no label window closed since answers were logged).</p>"
        )

    def num(value: Any, low: Any = None, high: Any = None) -> str:
        if value is None:
            return "n/a"
        if low is None or high is None:
            return f"{value:.3f}"
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"

    head = (
        "<tr><th>model</th><th>version</th><th>experiment / arm</th><th>source</th>"
        "<th>customers</th><th>positives</th><th>ROC AUC</th><th>top-decile lift</th>"
        "<th>observed / expected</th><th>ECE</th></tr>"
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(cell))}</td>"
            for cell in (
                r["model_name"],
                r["model_version"] or "-",
                f"{r['experiment'] or '-'} / {r['arm'] or '-'}",
                r["source"],
                f"{r['customers']:,}",
                f"{r['positives']:,}",
                num(r["auc"], r["auc_low"], r["auc_high"]),
                num(r["lift_top_decile"], r["lift_low"], r["lift_high"]),
                num(r["observed_to_expected"], r["oe_low"], r["oe_high"]),
                num(r["calibration_error"]),
            )
        )
        + "</tr>"
        for r in rows
    )
    first = rows[0]
    return (
        f"<h2>Online evaluation</h2><p>Answers served on {first['served_date']}, judged by the "
        f"orders of the next {first['horizon_days']} days (one row per served customer and "
        f"group; {first['confidence']:.0%} bootstrap intervals, {first['resamples']} "
        f"resamples).</p><table>{head}{body}</table>"
    )


def latest_gate_decision(spark: SparkSession, settings: Settings) -> dict[str, str] | None:
    """The primary model's latest ``models.gate_decisions`` row, with its intervals, as text."""
    if not table_exists(spark, settings, GATE_DECISIONS):
        return None
    rows = (
        read_table(spark, settings, GATE_DECISIONS)
        .where(F.col("model_name") == settings.model.name)
        .orderBy(F.col("decided_at").desc())
        .limit(1)
        .collect()
    )
    if not rows:
        return None
    row = rows[0]
    out = {
        "decided at": f"{row.decided_at:%Y-%m-%d %H:%M} UTC",
        "candidate version": str(row.candidate_version),
        "champion version then": str(row.champion_version or "none"),
        "verdict": str(row.verdict),
        "reason": str(row.reason),
        "holdout as-of date": str(row.holdout_as_of_date),
        "holdout rows": f"{row.holdout_rows:,}",
    }
    comparison = json.loads(row.metrics_json).get("comparison") or {}
    for role in ("primary", "secondary"):
        iv = comparison.get(role)
        if iv:
            out[f"{iv['metric']} change, challenger - champion"] = (
                f"{iv['estimate']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}] "
                f"({iv['confidence']:.0%}, {iv['resamples']} paired bootstrap resamples)"
            )
    return out


def champion_calibration(
    spark: SparkSession, settings: Settings, *, version: str | None
) -> dict[str, Any] | None:
    """The calibration recorded by the gate decision of the champion ``version`` scored."""
    if version is None or not table_exists(spark, settings, GATE_DECISIONS):
        return None
    rows = (
        read_table(spark, settings, GATE_DECISIONS)
        .where(
            (F.col("model_name") == settings.model.name)
            & (F.col("candidate_version") == F.lit(version))
        )
        .orderBy(F.col("decided_at").desc())
        .limit(1)
        .collect()
    )
    if not rows:
        return None
    found: dict[str, Any] | None = json.loads(rows[0].metrics_json).get("calibration")
    return None if found is None else {**found, "version": version}


def _calibration_section(calibration: dict[str, Any] | None, plt: Any) -> str:
    if not calibration:
        return "<h2>Calibration</h2><p>No calibration is recorded for the champion scored.</p>"
    curve = calibration.get("holdout_curve") or []
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
    ax.plot([c["mean_predicted"] for c in curve], [c["observed_rate"] for c in curve], marker="o")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(f"champion v{calibration['version']} on its holdout")

    def num(key: str) -> str:
        value = calibration.get(key)
        return "n/a" if value is None else f"{float(value):.4f}"

    rows = {
        "method": str(calibration.get("method")),
        "why": str(calibration.get("reason")),
        "Platt slope, intercept": f"{num('slope')}, {num('intercept')}",
        "validation calibration error, before / after": (
            f"{num('validation_error_before')} / {num('validation_error_after')}"
        ),
        "holdout calibration error (served probabilities)": num("holdout_error"),
    }
    table = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows.items()
    )
    out = f"<h2>Calibration</h2><table>{table}</table>{_png(fig)}"
    plt.close(fig)
    return out


def _scores(history: Any, day: dt.date | None) -> pd.DataFrame:
    if day is None:
        return pd.DataFrame(columns=["customer_id", "model_role", "model_version", "score"])
    frame: pd.DataFrame = (
        history.where(F.col("score_date") == F.lit(day))
        .select("customer_id", "model_role", "model_version", "score")
        .toPandas()
    )
    return frame


def _previous_date(history: Any, day: dt.date) -> dt.date | None:
    row = history.where(F.col("score_date") < F.lit(day)).agg(F.max("score_date")).first()
    return None if row is None or row[0] is None else row[0]


def _features(spark: SparkSession, settings: Settings, day: dt.date | None) -> pd.DataFrame:
    if day is None or not table_exists(spark, settings, CUSTOMER_FEATURES):
        return pd.DataFrame(columns=["customer_id", *FEATURE_NAMES])
    frame: pd.DataFrame = (
        read_table(spark, settings, CUSTOMER_FEATURES)
        .where(F.col("as_of_date") == F.lit(day))
        .select("customer_id", *FEATURE_NAMES)
        .toPandas()
    )
    return frame


def _champion_vs_challenger(
    champion: pd.DataFrame, challenger: pd.DataFrame
) -> dict[str, float] | None:
    if champion.empty or challenger.empty:
        return None
    both = champion.merge(challenger, on="customer_id", suffixes=("_champion", "_challenger"))
    a, b = both["score_champion"].to_numpy(), both["score_challenger"].to_numpy()
    k = max(1, len(both) // 10)
    top_a = set(both["customer_id"].to_numpy()[np.argsort(-a, kind="stable")[:k]])
    top_b = set(both["customer_id"].to_numpy()[np.argsort(-b, kind="stable")[:k]])
    return {
        "customers": float(len(both)),
        "correlation": float(np.corrcoef(a, b)[0, 1]) if len(both) > 1 else float("nan"),
        "mean_abs_diff": float(np.mean(np.abs(a - b))),
        "top_decile_overlap": len(top_a & top_b) / k,
    }


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return '<img src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '"/>'


def _render(
    report: NightReport,
    *,
    champion: pd.DataFrame,
    prev_champion: pd.DataFrame,
    challenger: pd.DataFrame,
    sync: dict[str, Any] | None,
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [f"<h1>lakescore night {report.score_date}</h1>"]
    parts.append(
        f"<h2>Coverage</h2><p>{report.customers_scored:,} customers scored of "
        f"{report.customers_with_features:,} with features ({report.coverage:.2%}).</p>"
    )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = [float(x) for x in np.linspace(0, 1, 41)]
    if not prev_champion.empty:
        ax.hist(
            prev_champion["score"],
            bins=bins,
            alpha=0.5,
            label=f"{report.previous_score_date}",
            density=True,
        )
    ax.hist(champion["score"], bins=bins, alpha=0.5, label=f"{report.score_date}", density=True)
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend()
    psi = "n/a (no previous night)" if report.score_psi is None else f"{report.score_psi:.4f}"
    parts.append(
        f"<h2>Score distribution</h2><p>PSI against the previous night: {psi}</p>{_png(fig)}"
    )
    plt.close(fig)
    if report.feature_psi:
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(report.feature_psi) + 1))
        names = list(report.feature_psi)
        ax.barh(names, [report.feature_psi[n] for n in names])
        ax.axvline(0.1, color="orange", linestyle="--")
        ax.axvline(0.25, color="red", linestyle="--")
        ax.set_xlabel("PSI vs previous night")
        parts.append(f"<h2>Feature drift</h2>{_png(fig)}")
        plt.close(fig)
    else:
        parts.append("<h2>Feature drift</h2><p>No previous feature partition to compare with.</p>")
    if report.challenger:
        both = champion.merge(challenger, on="customer_id", suffixes=("_champion", "_challenger"))
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(both["score_champion"], both["score_challenger"], s=2, alpha=0.3)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
        ax.set_xlabel("champion")
        ax.set_ylabel("challenger")
        rows = "".join(
            f"<tr><td>{k}</td><td>{v:.4f}</td></tr>" for k, v in report.challenger.items()
        )
        parts.append(f"<h2>Champion vs challenger</h2><table>{rows}</table>{_png(fig)}")
        plt.close(fig)
    else:
        parts.append("<h2>Champion vs challenger</h2><p>No challenger was scored this night.</p>")
    if report.gate:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in report.gate.items()
        )
        parts.append(f"<h2>Gate</h2><table>{rows}</table>")
    else:
        parts.append("<h2>Gate</h2><p>No gate decision is recorded for this model.</p>")
    parts.append(_calibration_section(report.calibration, plt))
    if sync:
        rows = "".join(
            f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(sync[key]))}</td></tr>"
            for key, label in SYNC_ROWS.items()
            if key in sync
        )
        parts.append(f"<h2>Sync</h2><table>{rows}</table>")
    else:
        parts.append("<h2>Sync</h2><p>No sync of this score date was recorded.</p>")
    parts.append(_online_section(report.online))
    style = "body{font-family:sans-serif;max-width:900px;margin:2em auto}td{padding:2px 12px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{''.join(parts)}</body></html>"
