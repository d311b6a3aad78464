"""After scoring: score runs and their limits, PSI and histograms, backtests of matured
dates, the online evaluation of served answers, retrain triggers, and the night report.
"""

from __future__ import annotations

from jobs.monitoring.backtests import run_matured_backtests
from jobs.monitoring.histogram import histogram_markdown, score_histogram
from jobs.monitoring.online_eval import OnlineEvalRun, run_online_evaluation
from jobs.monitoring.report import build_night_report
from jobs.monitoring.retrain_triggers import (
    BacktestQuality,
    OnlineQuality,
    RunDrift,
    latest_monitoring,
    latest_online,
    retrain_reason,
)
from jobs.monitoring.score_runs import (
    ScoreRun,
    champion_scores,
    limit_failures,
    read_score_run,
    record_score_run,
)
from jobs.monitoring.served_table import ServedCompaction, compact_served

__all__ = [
    "BacktestQuality",
    "OnlineEvalRun",
    "OnlineQuality",
    "RunDrift",
    "ScoreRun",
    "ServedCompaction",
    "build_night_report",
    "champion_scores",
    "compact_served",
    "histogram_markdown",
    "latest_monitoring",
    "latest_online",
    "limit_failures",
    "read_score_run",
    "record_score_run",
    "retrain_reason",
    "run_matured_backtests",
    "run_online_evaluation",
    "score_histogram",
]
