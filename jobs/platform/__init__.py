"""The platform every domain stands on: the Spark session, Delta tables (``lake``), the
Mongo client and the local Mongo-wire server, the one-writer-at-a-time leases, MLflow
registry access, the SQL catalog, and retention (VACUUM, leftover serving collections,
old MLflow artifacts).
"""

from __future__ import annotations

from jobs.platform.lake import (
    ensure_table,
    file_statistics,
    last_commit,
    log_version,
    read_table,
    table_exists,
    table_path,
    table_version,
)
from jobs.platform.lease import (
    LEASES_COLLECTION,
    NIGHT_LEASE,
    RETRAIN_LEASE,
    SYNC_LEASE,
    Lease,
    LeaseHeldError,
    LeaseLostError,
    default_holder,
    hold_lease,
    leased,
    retrain_lease,
)
from jobs.platform.local_mongo import ensure_local_mongo, stop_local_mongo
from jobs.platform.mongo import (
    DUPLICATE_KEY,
    mongo_client,
    retrying,
    serving_db,
    with_retries,
    write_concern,
)
from jobs.platform.registry import (
    CHALLENGER,
    CHAMPION,
    configure_mlflow,
    load_booster,
    version_by_alias,
)
from jobs.platform.retention import RetentionResult, apply_retention
from jobs.platform.spark import SparkDriverLost, get_spark, live_spark, session_conf

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DUPLICATE_KEY",
    "LEASES_COLLECTION",
    "NIGHT_LEASE",
    "RETRAIN_LEASE",
    "SYNC_LEASE",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "RetentionResult",
    "SparkDriverLost",
    "apply_retention",
    "configure_mlflow",
    "default_holder",
    "ensure_local_mongo",
    "ensure_table",
    "file_statistics",
    "get_spark",
    "hold_lease",
    "last_commit",
    "leased",
    "live_spark",
    "load_booster",
    "log_version",
    "mongo_client",
    "read_table",
    "retrain_lease",
    "retrying",
    "serving_db",
    "session_conf",
    "stop_local_mongo",
    "table_exists",
    "table_path",
    "table_version",
    "version_by_alias",
    "with_retries",
    "write_concern",
]
