"""Train every configured model (and the cold-start model) for one score date, from one command.

    python -m jobs.ops.retrain --date 1998-02-01                 # all definitions + cold-start
    python -m jobs.ops.retrain --date 1998-02-01 --model purchase_30d --no-coldstart

Reads whatever silver.orders (and silver.customers) hold: CDNOW or synthetic
landing files ingested by the lakehouse job. Prints each candidate's holdout metrics
against its baselines (AUC, top-decile lift, log loss for a binary label; RMSE, MAE,
R2, Gini, top-decile share for a spend label), and the gate's verdict.
"""

from __future__ import annotations

import argparse
import datetime as dt

from pyspark.sql import SparkSession

from jobs.training import train_coldstart, train_model
from schemas.settings import Settings, find_definition, get_settings, model_definitions

_COLUMNS = {
    "roc_auc": "AUC {:.4f}",
    "lift_top_decile": "lift@10% {:.2f}",
    "log_loss": "log loss {:.4f}",
    "rmse": "RMSE {:.2f}",
    "mae": "MAE {:.2f}",
    "r2": "R2 {:.4f}",
    "spearman": "Spearman {:.4f}",
    "gini": "Gini {:.4f}",
    "top_decile_share": "top-10% share {:.3f}",
}


def summary_lines(
    name: str,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
    verdict: str,
    reason: str,
) -> list[str]:
    """One line per model and baseline with the metrics of its task (binary or regression)."""
    lines = [f"{name}: {verdict} ({reason})"]
    rows = {"model": metrics, **baselines}
    for label, m in rows.items():
        cells = [fmt.format(m[key]) for key, fmt in _COLUMNS.items() if key in m]
        lines.append(f"  {label:<18} " + "  ".join(cells))
    return lines


def retrain(
    spark: SparkSession,
    settings: Settings,
    *,
    score_date: dt.date,
    models: list[str] | None = None,
    coldstart: bool = True,
) -> list[str]:
    """Train the named definitions (default: all), then the cold-start model; summary lines."""
    definitions = (
        [find_definition(settings, n) for n in models] if models else model_definitions(settings)
    )
    results = [
        train_model(spark, settings, score_date=score_date, definition=definition)
        for definition in definitions
    ]
    if coldstart:
        results.append(train_coldstart(spark, settings, score_date=score_date))
    lines: list[str] = []
    for result in results:
        lines += summary_lines(
            f"{result.model_name} v{result.version}",
            result.metrics,
            result.baselines,
            result.decision.verdict,
            result.decision.reason,
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    from jobs.platform import get_spark

    parser = argparse.ArgumentParser(prog="python -m jobs.ops.retrain", description=__doc__)
    parser.add_argument("--date", type=dt.date.fromisoformat, required=True, help="score date")
    parser.add_argument("--model", action="append", help="definition name (repeatable)")
    parser.add_argument("--no-coldstart", action="store_true", help="skip the cold-start model")
    args = parser.parse_args(argv)
    settings = get_settings()
    lines = retrain(
        get_spark(settings),
        settings,
        score_date=args.date,
        models=args.model,
        coldstart=not args.no_coldstart,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
