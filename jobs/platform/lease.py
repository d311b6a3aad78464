"""One writer at a time: named leases in the serving store (collection ``leases``).

A lease is one document ``{_id: <name>, holder, owner, host, pid, pid_ns, token,
acquired_at, renewed_at, expires_at}``. Taking it is one atomic update: it matches only when the
lease is free (no document: the upsert inserts it) or expired; a lease still held
makes the upsert collide on ``_id`` (duplicate key), which reads as "held". While
held, a heartbeat thread moves ``expires_at`` forward every ``ttl_s / 3``; leaving
the ``with`` block deletes the document (only if it is still ours), retrying a
release that failed or timed out. A holder that died without releasing is taken over
once its lease expired, or at once when it ran on this machine (same host and process
namespace) and its process is gone. A lease left behind by its own ``owner`` (the
attempt before a retry of the same step, whose release never reached the store) is
re-taken at once by that owner instead of refusing it for up to ``ttl_s``.

Times are the server's (``$$NOW``), so holders on machines with different clocks
agree on expiry. Every operation is a ``findAndModify`` (or a ``delete``), one round
trip each.

Names: ``night`` (the nightly run: every night writes ``predictions.current``, so one
at a time whatever the score date), ``sync`` (writers of the serving collection) and
``retrain:<registered model>`` (whoever moves that model's champion alias; the
batch and the cold-start model train side by side).

A lease is a second line behind the orchestrator's run queue and cannot by itself
stop a holder that lost it (a process paused past its expiry): writers check it
(``Lease.check``) right before an irreversible step, and the steps that move shared
state (the sync watermark, the champion alias) compare-and-set on what they read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from jobs.platform.mongo import mongo_client, serving_db
from schemas.settings import Settings

log = logging.getLogger(__name__)

LEASES_COLLECTION = "leases"
NIGHT_LEASE = "night"
SYNC_LEASE = "sync"
RETRAIN_LEASE = "retrain"


def retrain_lease(model_name: str) -> str:
    """The lease of whoever may move ``model_name``'s champion alias."""
    return f"{RETRAIN_LEASE}:{model_name}"


class LeaseHeldError(RuntimeError):
    """Another run holds the lease (the message names it and since when)."""

    def __init__(self, message: str, *, name: str, holder: str | None) -> None:
        super().__init__(message)
        self.name = name
        self.holder = holder


class LeaseLostError(RuntimeError):
    """The lease this run held expired and was taken over: it must not write on."""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def default_holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, dt.datetime) else "?"


@dataclass(kw_only=True)
class Lease:
    """A held lease; ``check()`` before an irreversible step."""

    name: str
    holder: str
    token: str
    acquired_at: dt.datetime
    expires_at: dt.datetime
    collection: Collection[dict[str, Any]] = field(repr=False)
    lost: bool = False

    def check(self) -> None:
        """Raise ``LeaseLostError`` unless the lease is still ours (one read)."""
        if not self.lost and self.collection.find_one({"_id": self.name, "token": self.token}):
            return
        self.lost = True
        current = self.collection.find_one({"_id": self.name}) or {}
        now = current.get("holder")
        raise LeaseLostError(
            f"lease {self.name!r} of {self.holder} (taken {_when(self.acquired_at)}) was lost"
            + (f": now held by {now} since {_when(current.get('acquired_at'))}" if now else "")
        )


def _take(
    leases: Collection[dict[str, Any]],
    *,
    name: str,
    holder: str,
    owner: str | None,
    token: str,
    ttl_s: float,
    match: dict[str, Any],
) -> dict[str, Any] | None:
    """One atomic attempt: the lease document after taking it, or None when it is held."""
    literal = {
        "holder": holder,
        "owner": owner,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_ns": _pid_namespace(),
        "token": token,
    }
    update = [
        {
            "$set": {
                **{k: {"$literal": v} for k, v in literal.items()},
                "acquired_at": "$$NOW",
                "renewed_at": "$$NOW",
                "expires_at": {"$add": ["$$NOW", int(ttl_s * 1000)]},
            }
        }
    ]
    try:
        doc: dict[str, Any] | None = leases.find_one_and_update(
            {"_id": name, **match}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
    except DuplicateKeyError:  # the document exists and did not match: held
        return None
    return doc if doc is not None and doc.get("token") == token else None


def _dead_on_this_machine(doc: dict[str, Any]) -> bool:
    pid = doc.get("pid")
    return (
        isinstance(pid, int)
        and doc.get("host") == socket.gethostname()
        and doc.get("pid_ns") == _pid_namespace()
        and pid != os.getpid()
        and not _pid_alive(pid)
    )


def _taken_over(doc: dict[str, Any], *, owner: str | None) -> str | None:
    """Why a lease held by ``doc`` may be taken at once (None: it may not)."""
    if owner is not None and doc.get("owner") == owner:
        return "left behind by this owner's earlier attempt"
    if _dead_on_this_machine(doc):
        return "its process is gone"
    return None


def acquire(
    leases: Collection[dict[str, Any]],
    *,
    name: str,
    holder: str,
    ttl_s: float,
    wait_s: float,
    owner: str | None = None,
) -> Lease:
    """Take the lease ``name``, waiting up to ``wait_s`` for it; else ``LeaseHeldError``.

    ``owner``: who retries this run (a Dagster run and step, say): a lease still held
    under the same owner is one its earlier attempt failed to release, and is re-taken.
    Never share an owner between runs that may hold the lease at the same time.
    """
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    pause = min(1.0, max(0.05, wait_s / 20))
    while True:
        # In milliseconds: SecantusDB compares a stored date with $$NOW wrongly as dates.
        expired = {"$expr": {"$lt": [{"$toLong": "$expires_at"}, {"$toLong": "$$NOW"}]}}
        doc = _take(
            leases,
            name=name,
            holder=holder,
            owner=owner,
            token=token,
            ttl_s=ttl_s,
            match=expired,
        )
        current = None
        if doc is None:
            current = leases.find_one({"_id": name})
            why = None if current is None else _taken_over(current, owner=owner)
            if current is not None and why is not None:
                doc = _take(
                    leases,
                    name=name,
                    holder=holder,
                    owner=owner,
                    token=token,
                    ttl_s=ttl_s,
                    match={"token": current.get("token")},
                )
                if doc is not None:
                    log.warning(
                        "lease %r: took over from %s (%s)", name, current.get("holder"), why
                    )
        if doc is not None:
            return Lease(
                name=name,
                holder=holder,
                token=token,
                acquired_at=doc["acquired_at"],
                expires_at=doc["expires_at"],
                collection=leases,
            )
        if time.monotonic() >= deadline:
            current = current or {}
            other = current.get("holder")
            raise LeaseHeldError(
                f"lease {name!r} is held by {other or 'another run'} since "
                f"{_when(current.get('acquired_at'))} (until {_when(current.get('expires_at'))} "
                f"unless renewed); {holder} gave up"
                + (f" after waiting {wait_s:g} s" if wait_s else ""),
                name=name,
                holder=other,
            )
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))


def _heartbeat(lease: Lease, *, ttl_s: float, stop: threading.Event) -> None:
    interval = ttl_s / 3
    renew = [
        {
            "$set": {
                "renewed_at": "$$NOW",
                "expires_at": {"$add": ["$$NOW", int(ttl_s * 1000)]},
            }
        }
    ]
    while not stop.wait(interval):
        try:
            doc = lease.collection.find_one_and_update(
                {"_id": lease.name, "token": lease.token},
                renew,
                return_document=ReturnDocument.AFTER,
            )
        except PyMongoError as exc:  # the next beat may reach the store again
            log.warning("lease %r: renewal failed: %s", lease.name, exc)
            continue
        if doc is None:
            lease.lost = True
            log.error("lease %r of %s was taken over: renewals stop", lease.name, lease.holder)
            return
        lease.expires_at = doc["expires_at"]


def release(lease: Lease, *, attempts: int = 5) -> bool:
    """Delete the lease document if it is still ours, retrying a failed or timed-out
    delete (by token: repeating it is harmless). False when every attempt failed: the
    lease then stays held until it expires, or until its owner takes it again."""
    policy = Retrying(
        retry=retry_if_exception_type(PyMongoError),
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential(multiplier=0.2, max=2.0),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    try:
        for attempt in policy:
            with attempt:
                lease.collection.delete_one({"_id": lease.name, "token": lease.token})
    except PyMongoError as exc:
        log.warning(
            "lease %r of %s: release failed %d times (held until %s unless its owner retakes "
            "it): %s",
            lease.name,
            lease.holder,
            attempts,
            _when(lease.expires_at),
            exc,
        )
        return False
    return True


@contextlib.contextmanager
def hold_lease(
    db: Database[dict[str, Any]],
    *,
    name: str,
    holder: str | None = None,
    owner: str | None = None,
    ttl_s: float = 120.0,
    wait_s: float = 0.0,
    release_attempts: int = 5,
) -> Iterator[Lease]:
    """Hold the lease ``name`` for the ``with`` block (renewed while held, released after).

    ``LeaseHeldError`` when another holder still has it after ``wait_s`` seconds.
    ``owner``: see ``acquire`` (a retried step re-takes the lease its attempt left behind).
    """
    who = holder or default_holder()
    leases = db[LEASES_COLLECTION]
    lease = acquire(leases, name=name, holder=who, owner=owner, ttl_s=ttl_s, wait_s=wait_s)
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        kwargs={"lease": lease, "ttl_s": ttl_s, "stop": stop},
        name=f"lease-{name}",
        daemon=True,
    )
    beat.start()
    try:
        yield lease
    finally:
        stop.set()
        beat.join(timeout=5)
        release(lease, attempts=release_attempts)


@contextlib.contextmanager
def leased(
    settings: Settings, *, name: str, holder: str | None = None, owner: str | None = None
) -> Iterator[Lease]:
    """``hold_lease`` in the configured serving database, with the configured ttl, wait
    and release attempts."""
    client: MongoClient[dict[str, Any]] = mongo_client(settings)
    try:
        with hold_lease(
            serving_db(client, settings),
            name=name,
            holder=holder,
            owner=owner,
            ttl_s=settings.lease.ttl_s,
            wait_s=settings.lease.wait_s,
            release_attempts=settings.lease.release_attempts,
        ) as lease:
            yield lease
    finally:
        client.close()
