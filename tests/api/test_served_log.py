"""Every answer served lands in monitoring.served (a real uvicorn process writing Delta with
delta-rs): one row per prediction answered, written on graceful shutdown, drops counted
when the buffer is full, a failed write keeping its rows."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import httpx
import pytest
from deltalake import DeltaTable

from api.served_log import ServedLog
from schemas.tables import SERVED
from tests.api.conftest import DATABASE, MAIN_KEY
from tests.api.helpers import ApiProcess, api_env, start_api

pytestmark = pytest.mark.e2e


def served_api(
    tmp: Path, mongo_uri: str, registry: dict[str, Any], **api: Any
) -> tuple[ApiProcess, Path]:
    lake = tmp / "lake"
    env = api_env(
        workdir=tmp,
        mongo_uri=mongo_uri,
        database=DATABASE,
        tracking_uri=registry["tracking_uri"],
        keys=[MAIN_KEY],
        served_log="true",
        served_log_flush_s="600",  # nothing is written before the shutdown
        **api,
    )
    env["LAKESCORE_LAKE__ROOT"] = str(lake)
    return start_api(env, log_path=tmp / "uvicorn.log", ready_path="/readyz"), lake


def table_rows(lake: Path) -> list[dict[str, Any]]:
    path = lake / "monitoring" / "served"
    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()  # type: ignore[no-any-return]


def test_every_answer_served_is_one_row(
    tmp_path: Path, mongo_uri: str, api_registry: dict[str, Any], api_docs: Any
) -> None:
    api, lake = served_api(tmp_path, mongo_uri, api_registry)
    headers = {"X-API-Key": MAIN_KEY}
    answered: list[tuple[Any, ...]] = []
    request_ids: collections.Counter[str] = collections.Counter()
    by_request: collections.Counter[tuple[str, str, str]] = collections.Counter()
    try:
        with httpx.Client(base_url=api.url, headers=headers, timeout=10) as http:
            responses = [http.get(f"/v1/customers/C{i:05d}/predictions") for i in range(12)]
            responses += [http.get("/v1/customers/NEW-9/predictions?model=purchase_30d")]
            responses += [
                http.post(
                    "/v1/predictions/batch",
                    json={"customer_ids": [f"C{i:05d}" for i in range(40, 90)] + ["NEW-8"]},
                )
            ]
            responses += [
                http.post("/v1/customers/NEW-7/coldstart", json={"context": {"channel": "app"}})
            ]
            responses += [http.get("/v1/customers/bad$id/predictions")]  # 422: not an answer
            for resp in responses:
                if resp.status_code != 200:
                    continue
                body = resp.json()
                results = body.get("results", [body])
                for result in results:
                    for p in result["predictions"]:
                        answered.append(
                            (
                                result["customer_id"],
                                p["model_name"],
                                p["model_version"],
                                p["score"],
                                p["source"],
                            )
                        )
                        request_ids[resp.headers["x-request-id"]] += 1
                        by_request[
                            (resp.headers["x-request-id"], result["customer_id"], p["model_name"])
                        ] += 1
        assert responses[-1].status_code == 422
    finally:
        api.stop()  # SIGTERM: uvicorn's graceful shutdown runs the lifespan's end
    rows = table_rows(lake)
    logged = [
        (r["customer_id"], r["model_name"], r["model_version"], r["score"], r["source"])
        for r in rows
    ]
    # 12 single lookups (C00000 has two models), one with a model, 51 ids, one cold start.
    assert len(answered) == 13 + 1 + 51 + 1
    assert collections.Counter(logged) == collections.Counter(answered)
    assert collections.Counter(r["request_id"] for r in rows) == request_ids
    # Each row carries its own request's columns (the writer repeats them per prediction).
    logged_by_request = collections.Counter(
        (r["request_id"], r["customer_id"], r["model_name"]) for r in rows
    )
    assert logged_by_request == by_request
    assert {r["route"] for r in rows} == {"single", "batch", "coldstart"}
    assert all(r["latency_ms"] >= 0 and r["served_date"] == r["served_at"].date() for r in rows)
    assert DeltaTable(str(lake / "monitoring" / "served")).metadata().partition_columns == [
        "served_date"
    ]


def test_a_full_buffer_drops_and_counts(
    tmp_path: Path, mongo_uri: str, api_registry: dict[str, Any], api_docs: Any
) -> None:
    api, lake = served_api(tmp_path, mongo_uri, api_registry, served_log_max_rows="5")
    try:
        with httpx.Client(base_url=api.url, headers={"X-API-Key": MAIN_KEY}, timeout=10) as http:
            for i in range(8):
                resp = http.get(f"/v1/customers/C{i + 2:05d}/predictions?model=purchase_30d")
                assert resp.status_code == 200
            metrics = http.get("/metrics").text
        assert "lakescore_api_served_log_dropped_total 3.0" in metrics
    finally:
        api.stop()
    assert sorted(r["customer_id"] for r in table_rows(lake)) == [f"C{i + 2:05d}" for i in range(5)]


def answer(customer: str) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "model_name": "m",
        "model_version": "1",
        "score": 0.5,
        "source": "batch",
    }


def test_a_failed_write_keeps_its_rows_for_the_next(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the table's folder should be")
    log = ServedLog(path=str(blocker / "served"), flush_s=600, max_rows=3)
    for c in ("a", "b"):
        log.record_served(
            request_id=c, route="single", latency_s=0.001, degraded=False, served=[answer(c)]
        )
    assert log.flush() == 0  # the table cannot be written: both rows kept
    for c in ("c", "d"):
        log.record_served(
            request_id=c, route="single", latency_s=0.0, degraded=True, served=[answer(c)]
        )
    assert log.dropped == 1  # three buffered at most
    log.path = str(tmp_path / "served")
    assert log.flush() == 3
    rows = DeltaTable(log.path).to_pyarrow_table().to_pylist()
    assert sorted(r["customer_id"] for r in rows) == ["a", "b", "c"]
    assert [f.name for f in DeltaTable(log.path).schema().fields] == SERVED.columns


def test_rows_in_flight_do_not_wake_the_writer_again(tmp_path: Path) -> None:
    log = ServedLog(path=str(tmp_path / "served"), flush_s=600, max_rows=100, flush_rows=3)
    for c in ("a", "b", "c"):
        log.record_served(
            request_id=c, route="single", latency_s=0.0, degraded=False, served=[answer(c)]
        )
    assert log._wake.is_set()  # three rows wait: the writer is woken
    log._wake.clear()
    with log._swap:  # the writer has taken them and is writing (they still count in the bound)
        in_flight, log._rows, log._requests = log._rows, [], []
    log.record_served(
        request_id="d", route="single", latency_s=0.0, degraded=False, served=[answer("d")]
    )
    assert not log._wake.is_set() and len(in_flight) == 3
