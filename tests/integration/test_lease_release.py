"""Releasing a lease when the store does not answer: the release is retried, and a lease its
release left behind is re-taken by its own owner (a retried step) while others are refused.

The faults come from the real Mongo-wire server (``configureFailPoint`` on ``delete``, a
server of its own with test commands on): the delete is held past the client's socket
timeout and then refused, so the lease document stays unless a later attempt removes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from jobs.platform import LEASES_COLLECTION, LeaseHeldError, hold_lease
from tests.integration.test_sync_faults import failpoint
from tests.integration.test_sync_faults import fault_uri as fault_uri  # the fixture

pytestmark = pytest.mark.integration

SOCKET_TIMEOUT_MS = 300


@pytest.fixture
def db(fault_uri: str) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(fault_uri, socketTimeoutMS=SOCKET_TIMEOUT_MS)
    name = "t_release_" + uuid.uuid4().hex[:10]
    try:
        yield client[name]
    finally:
        failpoint(fault_uri, "off")
        client.drop_database(name)
        client.close()


def timed_out_deletes(uri: str, mode: Any) -> None:
    """``delete`` blocked past the socket timeout, then refused (it never deletes)."""
    failpoint(
        uri,
        mode,
        failCommands=["delete"],
        blockConnection=True,
        blockTimeMS=3 * SOCKET_TIMEOUT_MS,
        errorCode=2,
    )


def lease_doc(db: Database[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return db[LEASES_COLLECTION].find_one({"_id": name})


def test_a_release_that_times_out_is_retried_and_frees_the_lease(
    db: Database[dict[str, Any]], fault_uri: str
) -> None:
    with hold_lease(db, name="sync", holder="first sync", release_attempts=5):
        # The first release attempt times out twice (the driver retries a write once).
        timed_out_deletes(fault_uri, {"times": 2})
    assert lease_doc(db, "sync") is None
    with hold_lease(db, name="sync", holder="next sync", wait_s=0) as lease:  # free at once
        assert lease_doc(db, "sync")["token"] == lease.token  # type: ignore[index]


def test_a_lease_left_behind_is_retaken_by_its_owner_and_refused_to_others(
    db: Database[dict[str, Any]], fault_uri: str
) -> None:
    owner = "dagster run r1 mongo/predictions"
    with hold_lease(db, name="sync", holder="attempt 1", owner=owner, release_attempts=2) as first:
        timed_out_deletes(fault_uri, "alwaysOn")  # no release attempt reaches the store
    failpoint(fault_uri, "off")
    left = lease_doc(db, "sync")
    assert left is not None and left["token"] == first.token  # held until it expires

    with (
        pytest.raises(LeaseHeldError, match="held by attempt 1") as refused,
        hold_lease(db, name="sync", holder="another run", owner="dagster run r2 x"),
    ):
        pytest.fail("another owner took a lease that is still held")
    assert refused.value.holder == "attempt 1"

    with hold_lease(db, name="sync", holder="attempt 2", owner=owner, wait_s=0) as second:
        now = lease_doc(db, "sync")
        assert now is not None and now["token"] == second.token != first.token
        assert now["holder"] == "attempt 2"
    assert lease_doc(db, "sync") is None  # and released normally this time
