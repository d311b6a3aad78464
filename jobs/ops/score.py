"""The scoring night's job alone: score every customer for one date and record the run.

``python -m jobs.ops.score --date 1998-01-01`` (or through spark-submit).
"""

from __future__ import annotations

import argparse
import datetime as dt

from jobs.monitoring import record_score_run
from jobs.platform import get_spark
from jobs.scoring import score_date
from schemas.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score every customer for one date.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)

    settings = get_settings()
    spark = get_spark(settings)
    result = score_date(spark, settings, score_date=args.date, run_id=args.run_id)
    run = record_score_run(spark, settings, result=result)
    print(f"{result} master={spark.sparkContext.master} coverage={run.coverage:.4f}")


if __name__ == "__main__":
    main()
