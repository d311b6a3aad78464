"""/metrics says how old the served data is: the age of its last completed sync, its newest
score date, and how many answers were read from data older than api.sync_stale_after_hours.
Over a real uvicorn process and the real Mongo-wire server, with the watermark written by
the sync's own compare-and-set (``jobs.sync.state.commit``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from tests.api.conftest import MAIN_KEY
from tests.api.helpers import MODEL, ApiProcess, api_env, doc, seed_mongo, start_api, wait_until

pytestmark = pytest.mark.e2e
HEADERS = {"X-API-Key": MAIN_KEY}
DATABASE = "data_age"
STALE_AFTER_HOURS = 0.0001  # 0.36 s: answers soon after a sync already count as stale
STALE_AFTER_S = STALE_AFTER_HOURS * 3600


def samples(api: ApiProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by name and labels."""
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def age(api: ApiProcess) -> float:
    return samples(api)[("lakescore_served_data_age_seconds", ())]


def score_date(api: ApiProcess, model: str = MODEL) -> float | None:
    return samples(api).get(("lakescore_served_score_date", (("model", model),)))


def stale_answers(api: ApiProcess, route: str) -> float:
    return samples(api).get(("lakescore_api_stale_answers_total", (("route", route),)), 0.0)


def midnight(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def sync(uri: str, *, scored: dt.date) -> None:
    """What a night's sync leaves: a document scored on ``scored``, then the watermark moved
    by the sync's own compare-and-set from the version it read."""
    from jobs.sync.state import commit

    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        db = client[DATABASE]
        db["predictions"].replace_one(
            {"_id": "C00002"}, doc("C00002", score=0.5, score_date=scored), upsert=True
        )
        version = db["sync_state"].find_one({"_id": "predictions"})["delta_version"]
        commit(
            db,
            collection="predictions",
            delta_version=version + 1,
            documents=db["predictions"].count_documents({}),
            mode="incremental",
            expected_version=version,
            run_id=f"test-sync-{version + 1}",
        )
    finally:
        client.close()


@pytest.fixture(scope="module")
def stale_api(
    api_workdir: Path, mongo_uri: str, api_registry: dict[str, Any]
) -> Iterator[ApiProcess]:
    """An API whose staleness bound is tiny, over its own database."""
    seed_mongo(mongo_uri, database=DATABASE)
    workdir = api_workdir / "data-age"
    workdir.mkdir(exist_ok=True)
    env = api_env(
        workdir=workdir,
        mongo_uri=mongo_uri,
        database=DATABASE,
        tracking_uri=api_registry["tracking_uri"],
        keys=[MAIN_KEY],
        sync_stale_after_hours=str(STALE_AFTER_HOURS),
    )
    process = start_api(env, log_path=workdir / "uvicorn.log", ready_path="/readyz")
    try:
        yield process
    finally:
        process.stop()


def test_after_a_sync_the_metrics_show_its_age_and_score_date(
    stale_api: ApiProcess, mongo_uri: str
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    # The seeded collection's newest score date (fresh customers: yesterday), once read.
    assert wait_until(lambda: score_date(stale_api) == midnight(today - dt.timedelta(days=1)))
    assert wait_until(lambda: age(stale_api) > 1.0)  # the seed's sync is getting older

    sync(mongo_uri, scored=today)
    # The API sees the new watermark: the age starts again, the newest score date moves.
    assert wait_until(lambda: score_date(stale_api) == midnight(today))
    seen = age(stale_api)
    assert 0.0 <= seen < 30.0  # since the commit just above (30 s: a slow, busy machine)
    assert wait_until(lambda: age(stale_api) > seen)  # and it keeps counting


def test_answers_from_data_older_than_the_bound_are_counted(stale_api: ApiProcess) -> None:
    assert wait_until(lambda: age(stale_api) > STALE_AFTER_S)  # the last sync is past the bound
    before_batch = stale_answers(stale_api, "batch")
    ids = [f"C{i:05d}" for i in range(0, 10, 2)] + [f"AGE-NEW-{i}" for i in range(5)]
    resp = httpx.post(
        f"{stale_api.url}/v1/predictions/batch",
        headers=HEADERS,
        json={"customer_ids": ids},
        timeout=10,
    )
    results = resp.json()["results"]
    assert [r["predictions"][0]["source"] for r in results] == ["batch"] * 5 + ["prior"] * 5
    served = [p["source"] for r in results for p in r["predictions"]]  # C00000 has two models
    assert set(served) == {"batch", "prior"}
    # Every answer of the batch was read from the synced data: each one counts.
    assert stale_answers(stale_api, "batch") - before_batch == len(served)

    before_single = stale_answers(stale_api, "single")
    for _ in range(2):  # the second is the shortcut's kept answer: counted all the same
        single = httpx.get(
            f"{stale_api.url}/v1/customers/C00004/predictions?model={MODEL}",
            headers=HEADERS,
            timeout=10,
        )
        assert single.json()["predictions"][0]["source"] == "batch"
    assert stale_answers(stale_api, "single") - before_single == 2

    # The cold-start model's answer was not read from the synced data.
    before_cold = stale_answers(stale_api, "coldstart")
    cold = httpx.post(
        f"{stale_api.url}/v1/customers/AGE-NEW-9/coldstart",
        headers=HEADERS,
        json={"context": {"channel": "app", "days_since_signup": 5}},
        timeout=10,
    )
    assert cold.json()["predictions"][0]["source"] == "coldstart"
    assert stale_answers(stale_api, "coldstart") == before_cold


def test_answers_within_the_default_bound_are_not_counted(
    api: ApiProcess, headers: dict[str, str]
) -> None:
    """The session's API (default bound, 36 hours) over data its tests synced minutes ago."""
    seen = age(api)
    assert 0.0 <= seen < 3600.0
    today = dt.datetime.now(dt.UTC).date()
    # Seeded yesterday's scores; another test's night may have added today's.
    assert score_date(api) in (midnight(today - dt.timedelta(days=1)), midnight(today))
    resp = httpx.post(
        f"{api.url}/v1/predictions/batch",
        headers=headers,
        json={"customer_ids": ["C00010", "C00011", "AGE-NEW-1"]},
        timeout=10,
    )
    assert resp.status_code == 200
    assert stale_answers(api, "batch") == 0.0
