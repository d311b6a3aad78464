"""The one-writer-at-a-time lease on the real Mongo-wire server: refused, waited for, renewed,
released, taken over when expired or when its process died on this machine, lost."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from jobs.platform import LEASES_COLLECTION, LeaseHeldError, LeaseLostError, hold_lease
from jobs.platform.lease import _pid_namespace

pytestmark = pytest.mark.integration


@pytest.fixture
def db(mongo_uri: str) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    name = "t_lease_" + uuid.uuid4().hex[:10]
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def test_a_second_holder_is_refused_with_the_holder_named(db: Database[dict[str, Any]]) -> None:
    with hold_lease(db, name="sync", holder="night of 1998-02-01 on host-a") as lease:
        with pytest.raises(LeaseHeldError) as refused, hold_lease(db, name="sync", holder="b"):
            pytest.fail("a held lease was granted twice")
        message = str(refused.value)
        assert "'sync' is held by night of 1998-02-01 on host-a since " in message
        assert lease.acquired_at.strftime("%Y-%m-%d %H:%M:%S") in message
        assert "; b gave up" in message
        assert refused.value.holder == "night of 1998-02-01 on host-a"
        with hold_lease(db, name="retrain:m", holder="other name"):  # another name is free
            pass
    doc = db[LEASES_COLLECTION].find_one({"_id": "sync"})
    assert doc is None  # released


def test_a_waiting_holder_gets_the_lease_once_it_is_released(
    db: Database[dict[str, Any]],
) -> None:
    order: list[str] = []
    entered = threading.Event()

    def first() -> None:
        with hold_lease(db, name="night", holder="first"):
            entered.set()
            time.sleep(0.8)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(10)
    started = time.monotonic()
    with hold_lease(db, name="night", holder="second", wait_s=20):
        waited = time.monotonic() - started
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    assert 0.3 < waited < 10


def test_the_heartbeat_keeps_a_lease_past_its_ttl(db: Database[dict[str, Any]]) -> None:
    with hold_lease(db, name="sync", holder="long run", ttl_s=0.6) as lease:
        first_expiry = lease.expires_at
        time.sleep(2.0)  # three ttls: without renewals it would have expired twice over
        with (
            pytest.raises(LeaseHeldError, match="held by long run"),
            hold_lease(db, name="sync", holder="intruder", ttl_s=0.6),
        ):
            pass
        lease.check()
        assert lease.expires_at > first_expiry


def test_an_expired_lease_is_taken_over(db: Database[dict[str, Any]]) -> None:
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
    db[LEASES_COLLECTION].insert_one(
        {
            "_id": "night",
            "holder": "crashed run on another host",
            "host": "another-host",
            "pid": 1,
            "pid_ns": "",
            "token": "old",
            "acquired_at": past - dt.timedelta(hours=1),
            "expires_at": past,
        }
    )
    with hold_lease(db, name="night", holder="new night") as lease:
        doc = db[LEASES_COLLECTION].find_one({"_id": "night"})
        assert doc is not None and doc["holder"] == "new night" and doc["token"] == lease.token
        assert doc["expires_at"] > past


def test_a_live_lease_of_another_host_is_not_taken_over(db: Database[dict[str, Any]]) -> None:
    future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=5)
    db[LEASES_COLLECTION].insert_one(
        {
            "_id": "night",
            "holder": "night on another host",
            "host": "another-host",
            "pid": 999_999_999,
            "pid_ns": _pid_namespace(),
            "token": "theirs",
            "acquired_at": future - dt.timedelta(minutes=7),
            "expires_at": future,
        }
    )
    with (
        pytest.raises(LeaseHeldError, match="held by night on another host"),
        hold_lease(db, name="night", holder="me"),
    ):
        pass


def test_a_lease_whose_process_died_on_this_machine_is_taken_over_at_once(
    db: Database[dict[str, Any]],
) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid nobody runs under any more
    future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=5)
    db[LEASES_COLLECTION].insert_one(
        {
            "_id": "sync",
            "holder": "killed sync",
            "host": socket.gethostname(),
            "pid": proc.pid,
            "pid_ns": _pid_namespace(),
            "token": "dead",
            "acquired_at": future - dt.timedelta(minutes=7),
            "expires_at": future,
        }
    )
    with hold_lease(db, name="sync", holder="rerun") as lease:
        assert db[LEASES_COLLECTION].find_one({"_id": "sync"})["token"] == lease.token


def test_a_lease_taken_over_is_known_lost(db: Database[dict[str, Any]]) -> None:
    with hold_lease(db, name="sync", holder="paused run", ttl_s=0.6) as lease:
        # Another run took it over (as after an expiry while this one was paused).
        db[LEASES_COLLECTION].update_one(
            {"_id": "sync"}, {"$set": {"holder": "newer run", "token": "newer"}}
        )
        with pytest.raises(LeaseLostError, match="now held by newer run"):
            lease.check()
        assert lease.lost
    # The newer holder's lease is not released by the one that lost it.
    assert db[LEASES_COLLECTION].find_one({"_id": "sync"})["holder"] == "newer run"


def test_one_of_many_racing_takers_gets_a_free_lease(db: Database[dict[str, Any]]) -> None:
    barrier = threading.Barrier(8)
    won: list[str] = []
    refused: list[str] = []
    release = threading.Event()

    def take(i: int) -> None:
        barrier.wait()
        try:
            with hold_lease(db, name="retrain:m", holder=f"taker {i}"):
                won.append(f"taker {i}")
                release.wait(10)
        except LeaseHeldError:
            refused.append(f"taker {i}")
            if len(refused) == 7:
                release.set()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1 and len(refused) == 7, (won, refused)
    assert os.getpid()  # all in one process: holders are told apart by token, not by pid
