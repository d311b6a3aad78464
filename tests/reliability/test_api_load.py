"""Scenario 9: load at 2x (fast) and 5x (slow) the measured capacity against a real uvicorn.

The API runs with its shipped overload settings (``api.max_concurrency``,
``api.shed_after_ms``). Capacity is measured first: ``WORKERS`` keep-alive connections in a
closed loop, every answer from MongoDB (read cache off: a campaign touching many distinct
customers). Then requests are offered at a multiple of that rate for a few seconds,
whatever the answers. Every answer must be 200, 429 or 503 (never a 500 or a hang past the
client timeout); some of the excess is refused (the answered and refused p99 and the
refused share are reported in the table, not asserted); known customers are never answered as unknown or with another
score (a degraded answer is excused up to ``MAX_DEGRADED_SHARE`` of a phase's answers, the
excess counts as lost; the degraded share is in the table), resident memory stays bounded,
and afterwards the service answers as before. During the burst itself the store's reads
queue behind the offered load, and answering some of them degraded within the budget is the
designed response, bounded separately (``BURST_MAX_DEGRADED_SHARE``): with the store marked
down on one slow read, 10-60% of burst answers were degraded on a shared 2-core machine;
marked down only after ``api.store_trip_after`` slow reads in a row, 4-10%.

The load generator is a hand-rolled HTTP/1.1 client on uvloop (``load.py``): with httpx the
generator used 50-70% of a core against the API's 20% during the burst, so the latencies
it reported (p99 6-8 s at 5x) were mostly the client's own queue.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import (
    ApiProcess,
    api_env,
    register_coldstart,
    seed_mongo,
    start_api,
    wait_until,
)
from tests.reliability.counting import MAX_DEGRADED_SHARE
from tests.reliability.load import (
    LoadGenerator,
    Stats,
    children,
    cpu_s,
    metric_sum,
    rss_kb,
    run,
    server_errors,
)

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

KEY = "load-key-0123456789abcdef0123"
HEADERS = {"X-API-Key": KEY}
DATABASE = "reliability_load"
WORKERS = 8
CUSTOMERS = 2_000
MEASURE_S, RECOVER_S = 3.0, 3.0
# Above capacity the store's reads queue: this share of burst answers may be degraded (flagged,
# within the budget); the capacity and recovery phases keep MAX_DEGRADED_SHARE.
BURST_MAX_DEGRADED_SHARE = 0.20
RSS_GROWTH_LIMIT_KB = 256 * 1024  # bounded: a queue growing with the offered load would pass it


@pytest.fixture(scope="module")
def load_api(
    mongo_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("load")
    registry = root / "mlflow"
    registry.mkdir()
    uri = f"sqlite:///{registry}/mlflow.db"
    register_coldstart(tracking_uri=uri, artifact_root=registry / "artifacts", seed=1, workdir=root)
    docs = seed_mongo(mongo_uri, database=DATABASE, n=CUSTOMERS)
    env = api_env(
        workdir=root,
        mongo_uri=mongo_uri,
        database=DATABASE,
        tracking_uri=uri,
        keys=[KEY],
        cache_max_entries="0",
    )
    api = start_api(env, log_path=root / "uvicorn.log", ready_path="/readyz")
    try:
        yield api, docs
    finally:
        api.stop()


def _summary(stats: Stats) -> str:
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(stats.statuses.items()))
    return (
        f"{stats.sent} sent in {stats.seconds:.1f} s ({stats.sent_per_s:.0f}/s, not sent "
        f"{stats.skipped}), {stats.ok_per_s:.0f} ok/s, {{{codes}}}, hung {stats.hung}, "
        f"broken connections {dict(stats.broken) or 0}, "
        f"degraded {stats.degraded} of {stats.answers} answers "
        f"({100 * stats.degraded_share:.1f}%, max {100 * stats.max_degraded_share:g}%), "
        f"p50 {stats.latency_ms(0.5):.0f} ms, "
        f"p99 {stats.latency_ms(0.99):.0f} ms (200s: p50 {stats.latency_ms(0.5, 'ok'):.0f}, "
        f"p99 {stats.latency_ms(0.99, 'ok'):.0f} ms; refusals: p99 "
        f"{stats.latency_ms(0.99, 'shed'):.0f} ms)"
    )


@pytest.mark.parametrize(
    # Slow tier (make reliability): the degraded share it bounds depends on the machine
    # having its cores to itself; the API's own overload tests (tests/api) stay default.
    "factor",
    [
        pytest.param(2, id="2x", marks=pytest.mark.slow),
        pytest.param(5, id="5x", marks=pytest.mark.slow),
    ],
)
def test_overload_is_refused_fast_and_recovers(
    load_api: tuple[ApiProcess, dict[str, Any]], factor: int, reliability_report: Any
) -> None:
    api, docs = load_api
    pid = api.proc.pid
    gen = LoadGenerator(api.url, headers=HEADERS, docs=docs, pid=pid, seed=factor)
    seconds = 4.0 if factor == 2 else 12.0

    capacity = run(gen.closed(workers=WORKERS, seconds=MEASURE_S))
    rss_before = rss_kb(pid)
    others = [p for p in children(os.getpid()) if p != pid]
    cpu0 = (cpu_s(pid), cpu_s(os.getpid()), sum(cpu_s(p) for p in others))
    burst = run(
        gen.open(
            rate_per_s=factor * capacity.ok_per_s,
            seconds=seconds,
            connections=4 * factor * WORKERS,  # far above what the server admits
        )
    )
    rss_after = rss_kb(pid)
    cpu1 = (cpu_s(pid), cpu_s(os.getpid()), sum(cpu_s(p) for p in others))
    cpu = [f"{100 * (b - a) / burst.seconds:.0f}%" for a, b in zip(cpu0, cpu1, strict=True)]
    back = wait_until(
        lambda: (
            (r := httpx.get(f"{api.url}/v1/customers/C00002/predictions", headers=HEADERS))
            and r.status_code == 200
            and r.json()["known"]
        )
    )
    recovery = run(gen.closed(workers=WORKERS, seconds=RECOVER_S))
    burst.max_degraded_share = BURST_MAX_DEGRADED_SHARE
    metrics = httpx.get(f"{api.url}/metrics").text
    shed_lag = metric_sum(metrics, "lakescore_api_shed_total", 'reason="loop_lag"')
    shed_cap = metric_sum(metrics, "lakescore_api_shed_total", 'reason="concurrency"')

    offered = burst.offered_per_s / capacity.ok_per_s if capacity.ok_per_s else 0.0
    sent = burst.sent_per_s / capacity.ok_per_s if capacity.ok_per_s else 0.0
    phases = (capacity, burst, recovery)
    degraded, answers = sum(p.degraded for p in phases), sum(p.answers for p in phases)
    lost = sum(p.rows_lost for p in phases)  # degraded beyond the bound count as lost
    reliability_report.record(
        scenario="9 load above capacity",
        load=(
            f"{offered:.1f}x offered ({sent:.1f}x sent) of {capacity.ok_per_s:.0f} req/s, "
            f"degraded {degraded}/{answers} ({100 * degraded / max(answers, 1):.1f}%)"
        ),
        faults=0,
        bad_inputs=0,
        rows_lost=lost,
        detail=(
            f"{factor}x: capacity {_summary(capacity)} | burst {_summary(burst)} | "
            f"RSS {rss_before // 1024} -> peak {burst.peak_rss_kb // 1024} -> "
            f"{rss_after // 1024} MiB | recovery {_summary(recovery)} | shed so far: "
            f"{shed_lag:.0f} on loop lag, {shed_cap:.0f} on concurrency | burst CPU: API {cpu[0]}, "
            f"load generator {cpu[1]}, other children {cpu[2]}"
        ),
    )
    assert capacity.statuses[200] > 0 and set(capacity.statuses) <= {200, 503}
    assert set(burst.statuses) <= {200, 429, 503}, burst.statuses  # never a 500
    assert burst.hung == 0  # every request answered within the client timeout
    assert burst.shed > 0  # above capacity, the excess is refused rather than queued
    # Latency and the refused share are figures in the table (printed by the suite), not
    # assertions: timings on a shared 2-core machine are not a test's to judge.
    assert burst.peak_rss_kb - rss_before < RSS_GROWTH_LIMIT_KB
    assert back
    assert set(recovery.statuses) == {200} and recovery.hung == 0 and not recovery.broken
    assert capacity.answers > 0 and recovery.answers > 0
    assert capacity.lost == burst.lost == recovery.lost == 0  # never another or no score
    assert server_errors(metrics) == 0
    # Degraded answers beyond their phase's bound, counted as lost above.
    assert lost == 0, (
        f"{degraded} of {answers} answers degraded "
        f"({[f'{100 * p.degraded_share:.0f}%' for p in phases]} of the capacity, burst and "
        f"recovery answers; bounds {100 * MAX_DEGRADED_SHARE:g}%, "
        f"{100 * BURST_MAX_DEGRADED_SHARE:g}% in the burst)"
    )
