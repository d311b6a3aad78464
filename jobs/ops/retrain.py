"""Train every configured model (and the cold-start model) for one score date, from one command.

    python -m jobs.ops.retrain --date 1998-02-01                 # all definitions + cold-start
    python -m jobs.ops.retrain --date 1998-02-01 --model purchase_30d --no-coldstart

Reads whatever silver.orders (and silver.customers) hold: CDNOW or synthetic
landing files ingested by the lakehouse job. Prints each candidate's holdout metrics
against its baselines (AUC, top-decile lift, log loss for a binary label; RMSE, MAE,
R2, Gini, top-decile share for a spend label), and the gate's verdict.

Each model trains under its ``retrain:<model>`` lease (in the serving store), so two
retrains of one model never race on its champion alias: the second is refused,
naming the first, or waits ``lease.wait_s``.
"""

from __future__ import annotations

import argparse
import datetime as dt

from pyspark.sql import SparkSession

from jobs.platform import default_holder, leased, retrain_lease
from jobs.training import TrainResult, train_coldstart, train_model
from schemas.coldstart import COLDSTART_SUFFIX
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
    holder = f"{default_holder()} retrain {score_date}"
    results: list[TrainResult] = []
    for definition in definitions:
        with leased(settings, name=retrain_lease(definition.name), holder=holder):
            results.append(
                train_model(spark, settings, score_date=score_date, definition=definition)
            )
    if coldstart:
        with leased(
            settings, name=retrain_lease(settings.model.name + COLDSTART_SUFFIX), holder=holder
        ):
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
    from jobs.platform import ensure_local_mongo, get_spark

    parser = argparse.ArgumentParser(prog="python -m jobs.ops.retrain", description=__doc__)
    parser.add_argument("--date", type=dt.date.fromisoformat, required=True, help="score date")
    parser.add_argument("--model", action="append", help="definition name (repeatable)")
    parser.add_argument("--no-coldstart", action="store_true", help="skip the cold-start model")
    args = parser.parse_args(argv)
    settings = get_settings()
    ensure_local_mongo(settings)  # the leases live in the serving store
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
