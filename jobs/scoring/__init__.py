"""Scoring a date: choosing the models and checking their features, the scoring transform
(compiled trees, pyarrow file reads), and the history and current writes.
"""

from __future__ import annotations

from jobs.scoring.run import (
    Publication,
    ScoreResult,
    ScoringError,
    current_rows,
    publish_run,
    publish_scored,
    score_date,
    score_history,
)

__all__ = [
    "Publication",
    "ScoreResult",
    "ScoringError",
    "current_rows",
    "publish_run",
    "publish_scored",
    "score_date",
    "score_history",
]
