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


class _Result:
    success = True
    run_id = "fake-run"


class _Job:
    """Stands in for the nightly job: its tags, and a run that looks at the leases."""

    def __init__(self, tags: dict[str, str], seen: list[Any], db: Database[dict[str, Any]]):
        self.tags, self.seen, self.db = tags, seen, db

    def execute_in_process(self, **kwargs: Any) -> _Result:
        self.seen.append(self.db[LEASES_COLLECTION].find_one({"_id": "night"}))
        return _Result()


def test_a_command_line_night_holds_the_night_lease_and_a_second_is_refused(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from cli import runs
    from pipelines import definitions
    from pipelines.definitions import LEASE_TAG, NIGHTLY_JOB

    own = settings.model_copy(
        update={
            "data_dir": str(tmp_path),
            "mongo": settings.mongo.model_copy(update={"database": "t_" + uuid.uuid4().hex[:10]}),
        }
    )
    client: MongoClient[dict[str, Any]] = MongoClient(own.mongo.effective_uri)
    db = client[own.mongo.database]
    seen: list[Any] = []
    job = _Job({LEASE_TAG: "night"}, seen, db)

    class _Defs:
        def resolve_job_def(self, name: str) -> _Job:
            assert name == NIGHTLY_JOB
            return job

    monkeypatch.setattr(definitions, "build_definitions", lambda settings: _Defs())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    day = dt.date(1998, 2, 1)
    try:
        assert runs.run_job(own, job_name=NIGHTLY_JOB, partition=day) == "fake-run"
        [held] = seen
        assert held is not None and held["holder"].endswith(" lakescore nightly 1998-02-01")
        assert db[LEASES_COLLECTION].count_documents({}) == 0  # released

        with (
            hold_lease(db, name="night", holder="the night of 1998-01-31"),
            pytest.raises(runs.NightFailed) as refused,
        ):
            runs.run_job(own, job_name=NIGHTLY_JOB, partition=day)
        assert str(refused.value).startswith(
            "nightly 1998-02-01 did not start: lease 'night' is held by the night of 1998-01-31"
        )
        assert len(seen) == 1  # the refused night never ran
    finally:
        client.drop_database(own.mongo.database)
        client.close()
