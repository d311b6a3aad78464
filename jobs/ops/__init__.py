"""What crosses domains: the scoring night's job alone (``python -m jobs.ops.score``),
backfill, retrain and rollback.
"""

from __future__ import annotations

from jobs.ops.model_rollback import RollbackError, rollback

__all__ = ["RollbackError", "rollback"]
