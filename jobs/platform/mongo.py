"""Opening the serving store from batch jobs (settings decide URI, timeouts, write concern).

Also what counts as a transient error (worth a bounded retry) and the retry policy
itself, so that every writer of the serving store retries the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pymongo import MongoClient, WriteConcern
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from schemas.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Server codes a retry can cure: failover, shutdown, network, interrupted, write-concern timeout.
TRANSIENT_CODES = frozenset({6, 7, 64, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
DUPLICATE_KEY = 11000


def mongo_client(settings: Settings, *, uri: str | None = None) -> MongoClient[dict[str, Any]]:
    cfg = settings.mongo
    return MongoClient(
        uri or cfg.effective_uri,
        serverSelectionTimeoutMS=cfg.server_selection_timeout_ms,
        socketTimeoutMS=cfg.socket_timeout_ms,
        connectTimeoutMS=cfg.server_selection_timeout_ms,
    )


def write_concern(settings: Settings) -> WriteConcern:
    cfg = settings.mongo
    return WriteConcern(
        w=cfg.write_concern_w,
        j=cfg.write_concern_j,
        wtimeout=cfg.write_concern_timeout_ms or None,
    )


def serving_db(client: MongoClient[dict[str, Any]], settings: Settings) -> Database[dict[str, Any]]:
    return client.get_database(settings.mongo.database, write_concern=write_concern(settings))


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry can cure (AutoReconnect, NetworkTimeout, NotPrimary, ...)."""
    if isinstance(exc, ConnectionFailure):  # AutoReconnect and its children, selection timeouts
        return True
    if isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError"):
        return True
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        codes = [e.get("code") for e in details.get("writeErrors", [])]
        codes += [e.get("code") for e in details.get("writeConcernErrors", [])]
        return bool(codes) and all(code in TRANSIENT_CODES for code in codes)
    return isinstance(exc, OperationFailure) and exc.code in TRANSIENT_CODES


def retrying(settings: Settings) -> Retrying:
    """Bounded exponential backoff on transient errors; anything else is raised at once."""
    cfg = settings.mongo
    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(cfg.retry_attempts),
        wait=wait_exponential(multiplier=cfg.retry_initial_backoff_s, max=cfg.retry_max_backoff_s),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )


def with_retries(settings: Settings, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` under the bounded retry policy (for idempotent operations only)."""
    for attempt in retrying(settings):
        with attempt:
            return fn(*args, **kwargs)
    raise AssertionError("unreachable: tenacity either returns or re-raises")
