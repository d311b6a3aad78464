"""MongoDB stopped while the API serves: degraded answers, readiness false, recovery without restart."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import MAIN_KEY
from tests.api.helpers import (
    COLDSTART_NAME,
    MODEL,
    ApiProcess,
    api_env,
    seed_mongo,
    start_api,
    wait_until,
)
from tests.conftest import free_port
from tests.reliability.counting import unanswered

pytestmark = pytest.mark.e2e
HEADERS = {"X-API-Key": MAIN_KEY}
DATABASE = "degraded"


def _start_mongo(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    from jobs.platform.local_mongo import start_server

    return start_server(port=port, storage_path=":memory:", log_path=workdir / "mongo-own.log")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the server runs in its own session
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def own_mongo(api_workdir: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    state: dict[str, Any] = {"port": port, "uri": f"mongodb://127.0.0.1:{port}/"}
    state["proc"] = _start_mongo(port, api_workdir)
    state["docs"] = seed_mongo(state["uri"], database=DATABASE)
    try:
        yield state
    finally:
        if state["proc"].poll() is None:
            _kill(state["proc"])


@pytest.fixture(scope="module")
def degraded_api(
    api_workdir: Path, own_mongo: dict[str, Any], api_registry: dict[str, Any]
) -> Iterator[ApiProcess]:
    env = api_env(
        workdir=api_workdir / "degraded",
        mongo_uri=own_mongo["uri"],
        database=DATABASE,
        tracking_uri=api_registry["tracking_uri"],
        keys=[MAIN_KEY],
        store_timeout_ms="200",
        store_retry_after_s="0.5",
        cache_max_entries="0",
        max_concurrency="4",
    )
    (api_workdir / "degraded").mkdir(exist_ok=True)
    process = start_api(
        env, log_path=api_workdir / "degraded" / "uvicorn.log", ready_path="/readyz"
    )
    try:
        yield process
    finally:
        process.stop()


def _get(api: ApiProcess, cid: str) -> httpx.Response:
    return httpx.get(f"{api.url}/v1/customers/{cid}/predictions", headers=HEADERS, timeout=10)


def test_overload_gets_fast_503s_not_hangs(degraded_api: ApiProcess) -> None:
    """More concurrent requests than ``max_concurrency``: the excess is refused with 503."""
    import asyncio

    ids = [f"C{i:05d}" for i in range(300)] + [f"N{i}" for i in range(700)]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
            calls = [
                client.post(f"{degraded_api.url}/v1/predictions/batch", json={"customer_ids": ids})
                for _ in range(40)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 503}
    assert 503 in statuses and 200 in statuses
    text = httpx.get(f"{degraded_api.url}/metrics").text
    assert 'lakescore_api_errors_total{kind="overload",route="batch"}' in text
    assert _get(degraded_api, "C00010").status_code == 200  # and it recovers at once


@pytest.mark.reliability
def test_mongo_down_then_back(
    degraded_api: ApiProcess, own_mongo: dict[str, Any], reliability_report: Any
) -> None:
    api = degraded_api
    # Precondition: the API serves from the store (the first read may still be opening
    # its connection within the 200 ms budget).
    before = wait_until(lambda: (r := _get(api, "C00010").json())["degraded"] is False and r)
    assert before and before["predictions"][0]["source"] == "batch"

    _kill(own_mongo["proc"])

    # Every request of the outage first; the figures come from what came back, then the checks.
    single = _get(api, "C00012")
    cold = httpx.post(
        f"{api.url}/v1/customers/C00012/coldstart",
        headers=HEADERS,
        json={"context": {"channel": "app", "days_since_signup": 5}},
        timeout=10,
    )
    batch = httpx.post(
        f"{api.url}/v1/predictions/batch",
        headers=HEADERS,
        json={"customer_ids": ["C00010", "C00011"]},
        timeout=10,
    )
    ready = httpx.get(f"{api.url}/readyz", timeout=10)
    answers = [
        *([single.json()] if single.status_code == 200 else []),
        *([cold.json()] if cold.status_code == 200 else []),
        *(batch.json()["results"] if batch.status_code == 200 else []),
    ]
    asked = ["C00012", "C00012", "C00010", "C00011"]  # single, cold start, batch of two
    lost = unanswered(asked, answers)  # asks that got no answer during the outage
    degraded = sum(bool(a.get("degraded")) for a in answers)
    reliability_report.record(
        scenario="5 MongoDB stopped while serving",
        load="sequential lookups",
        faults=1,
        rows_lost=lost,
        detail=(
            f"{len(answers)} of {len(asked)} asks answered ({degraded} degraded); single lookup "
            f"answered degraded in {single.elapsed.total_seconds() * 1e3:.0f} ms"
        ),
    )
    assert lost == 0, (single.status_code, cold.status_code, batch.status_code)

    # Every route still answers 200, flagged degraded, from the cold-start model or the prior.
    assert single.status_code == 200
    body = single.json()
    assert body["degraded"] is True and body["known"] is False
    [pred] = body["predictions"]
    assert (pred["source"], pred["score"]) == ("prior", 0.07)  # the prior read before the outage

    assert cold.status_code == 200
    cold_body = cold.json()
    assert cold_body["degraded"] is True
    assert cold_body["predictions"][0]["source"] == "coldstart"
    assert cold_body["predictions"][0]["model_name"] == COLDSTART_NAME

    assert batch.status_code == 200
    batch_body = batch.json()
    assert batch_body["degraded"] is True
    assert all(r["degraded"] and not r["known"] for r in batch_body["results"])
    assert degraded == len(asked)

    assert ready.status_code == 503
    assert ready.json()["store"] == "unreachable"
    assert httpx.get(f"{api.url}/healthz", timeout=10).status_code == 200

    # The server comes back (same port, fresh data): the API recovers without a restart.
    own_mongo["proc"] = _start_mongo(own_mongo["port"], api.log_path.parent)
    docs = seed_mongo(own_mongo["uri"], database=DATABASE)
    assert wait_until(lambda: httpx.get(f"{api.url}/readyz", timeout=10).status_code == 200)
    after = wait_until(lambda: (r := _get(api, "C00012").json())["degraded"] is False and r)
    [pred] = after["predictions"]
    assert (pred["source"], pred["score"]) == ("batch", docs["C00012"]["models"][MODEL]["score"])
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    assert 'lakescore_api_degraded_total{route="single"}' in text
