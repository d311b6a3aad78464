"""``predictions.current`` into the serving store: change feed, documents, writes,
verification and the watermark (moved by compare-and-set, under the ``sync`` lease).
Runs alone: ``python -m jobs.sync``.
"""

from __future__ import annotations

from jobs.sync.run import sync, sync_full, synced_version
from jobs.sync.state import SyncConflictError
from jobs.sync.verify import SyncVerificationError
from jobs.sync.writes import BatchWriteError, SyncError

__all__ = [
    "BatchWriteError",
    "SyncConflictError",
    "SyncError",
    "SyncVerificationError",
    "sync",
    "sync_full",
    "synced_version",
]
