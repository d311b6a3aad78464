"""Model quality (a benchmark, not a timed test): the champion against the classical baselines.

For several score dates, a model trained only on data before the date (the purged split
of jobs/training/trainset.py, default settings) is judged on its holdout as-of date
beside the prior, recency/frequency and BG/NBD (jobs/training/btyd.py). Printed per
date: ROC AUC and top-decile lift of each, and the paired bootstrap interval of the
champion's AUC minus BG/NBD's (the gate's interval, jobs/training/bootstrap.py), and the
interval of the same model retrained with another seed (the noise the gate's margin,
``gate.min_auc_gain``, must stand above). When a training set hits
``model.max_training_rows``, the holdout AUC of a model trained at half the cap (the
learning curve the cap's default is judged by).
Two data sets: the bundled CDNOW orders and synthetic customers.

    python -m bench quality [--synthetic-customers 100000] [--dates 1997-10-01,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from bench.common import Report
from jobs.lakehouse.ingest import cdnow_path, ingest_landing, ingest_orders
from jobs.lakehouse.synthetic import generate
from jobs.platform.spark import get_spark
from jobs.training.bootstrap import compare
from jobs.training.evaluation import baseline_metrics
from jobs.training.train import fit_candidate
from jobs.training.trainset import load_training_data
from schemas.settings import Settings, primary_definition

CDNOW_DATES = ("1997-10-01", "1997-12-01", "1998-02-01", "1998-04-01", "1998-06-01")
SYNTHETIC_START = dt.date(2023, 1, 1)
SYNTHETIC_DAYS = 540


def local_settings(root: Path) -> Settings:
    return Settings(
        lake={"root": str(root / "lake")},
        mlflow={
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_root": str(root / "artifacts"),
        },
    )


def judge(spark: Any, settings: Settings, score_date: dt.date) -> dict[str, Any]:
    """Train for ``score_date`` and score the model and the baselines on its holdout."""
    definition = primary_definition(settings)
    data = load_training_data(spark, settings, definition=definition, score_date=score_date)
    candidate = fit_candidate(data, definition=definition, settings=settings)
    y = candidate.holdout["label"].to_numpy(float)
    baselines = baseline_metrics("binary", y, candidate.baseline_scores)
    gate = settings.gate
    interval = compare(
        "binary",
        y,
        candidate=candidate.scores,
        champion=candidate.baseline_scores["bg_nbd"],
        resamples=gate.bootstrap_resamples,
        confidence=gate.confidence,
        seed=gate.bootstrap_seed,
    ).primary
    # Noise floor: the same model retrained with another seed, against the first.
    reseeded = settings.model_copy(
        update={"model": settings.model.model_copy(update={"seed": settings.model.seed + 1})}
    )
    twin = fit_candidate(data, definition=definition, settings=reseeded)
    noise = compare(
        "binary",
        y,
        candidate=twin.scores,
        champion=candidate.scores,
        resamples=gate.bootstrap_resamples,
        confidence=gate.confidence,
        seed=gate.bootstrap_seed,
    ).primary
    # Learning curve: when the cap binds, the holdout AUC at half the cap.
    half_auc = None
    if data.sample is not None and data.sample.fraction < 1.0:
        cfg = settings.model
        halved = settings.model_copy(
            update={
                "model": cfg.model_copy(update={"max_training_rows": cfg.max_training_rows // 2})
            }
        )
        small = load_training_data(spark, halved, definition=definition, score_date=score_date)
        half = fit_candidate(small, definition=definition, settings=halved)
        # Judged on the full-cap holdout rows, so both points of the curve see the same rows.
        scores = np.asarray(half.booster.predict(candidate.inputs), dtype=float)
        half_auc = float(roc_auc_score(y, scores))
    return {
        "sample_fraction": None if data.sample is None else data.sample.fraction,
        "auc_at_half_cap": half_auc,
        "reseed": noise.as_json(),
        "date": score_date.isoformat(),
        "holdout": data.split.holdout.isoformat(),
        "rows": len(data.frame),
        "model": candidate.metrics,
        "baselines": baselines,
        "interval": interval.as_json(),
    }


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    head = (
        f"{'score date':<11} {'holdout':<11} {'model AUC':>9} {'lift':>5} {'BG/NBD AUC':>10} "
        f"{'lift':>5} {'rec/freq AUC':>12} {'lift':>5} {'prior AUC':>9} {'lift':>5}  "
        "model - BG/NBD AUC [95% interval]   reseeded - model AUC [95% interval]   "
        "AUC at half the row cap"
    )
    print(head)
    for r in rows:
        m, b = r["model"], r["baselines"]
        iv = r["interval"]
        print(
            f"{r['date']:<11} {r['holdout']:<11} {m['roc_auc']:9.4f} {m['lift_top_decile']:5.2f} "
            f"{b['bg_nbd']['roc_auc']:10.4f} {b['bg_nbd']['lift_top_decile']:5.2f} "
            f"{b['recency_frequency']['roc_auc']:12.4f} "
            f"{b['recency_frequency']['lift_top_decile']:5.2f} "
            f"{b['prior']['roc_auc']:9.4f} {b['prior']['lift_top_decile']:5.2f}  "
            f"{iv['estimate']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}]   "
            f"{r['reseed']['estimate']:+.4f} [{r['reseed']['low']:+.4f}, {r['reseed']['high']:+.4f}]"
            f"   {'cap not reached' if r['auc_at_half_cap'] is None else format(r['auc_at_half_cap'], '.4f')}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench quality", description=__doc__)
    parser.add_argument("--dates", default=",".join(CDNOW_DATES))
    parser.add_argument("--synthetic-customers", type=int, default=100_000)
    args, _ = parser.parse_known_args(argv)
    report = Report(benchmark="quality")
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        root = Path(tmp)
        cdnow = local_settings(root / "cdnow")
        spark = get_spark(cdnow)
        ingest_orders(spark, cdnow, path=cdnow_path())
        dates = [dt.date.fromisoformat(d) for d in args.dates.split(",")]
        rows = [judge(spark, cdnow, d) for d in dates]
        print_table("CDNOW (23,570 customers, orders 1997-01-01..1998-06-30)", rows)
        report.notes["cdnow"] = rows
        if args.synthetic_customers > 0:
            synthetic = local_settings(root / "synthetic")
            landing = root / "landing"
            generate(
                customers=args.synthetic_customers,
                days=SYNTHETIC_DAYS,
                seed=1,
                out=landing,
                start=SYNTHETIC_START,
            )
            ingest_landing(spark, synthetic, landing=landing)
            end = SYNTHETIC_START + dt.timedelta(days=SYNTHETIC_DAYS)
            synth_dates = [end - dt.timedelta(days=d) for d in (120, 60, 0)]
            synth_rows = [judge(spark, synthetic, d) for d in synth_dates]
            print_table(f"synthetic ({args.synthetic_customers:,} customers)", synth_rows)
            report.notes["synthetic"] = synth_rows
    report.print_and_save()


if __name__ == "__main__":
    main()
