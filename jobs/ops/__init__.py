"""What crosses domains: the scoring night's job alone, written, audited and published
(``python -m jobs.ops.score``), publishing a held night, backfill, retrain and rollback.
"""

from __future__ import annotations

from jobs.ops.model_rollback import RollbackError, rollback
from jobs.ops.score import AuditFailedError, held_runs, publish_held, score_audited

__all__ = [
    "AuditFailedError",
    "RollbackError",
    "held_runs",
    "publish_held",
    "rollback",
    "score_audited",
]
