"""Scoring a date: choosing the models and checking their features, the scoring transform
(compiled trees, pyarrow file reads), and the history and current writes.
"""

from __future__ import annotations

from jobs.scoring.run import ScoreResult, ScoringError, score_date

__all__ = ["ScoreResult", "ScoringError", "score_date"]
