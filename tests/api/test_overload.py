"""Load shedding on event-loop lag, on a real asyncio loop that a hog task deliberately blocks.

The hog stands for a CPU-bound loop: it holds the loop ``HOG_S`` at a time and yields, so
every other callback (the lag probe, request tasks) runs that late. The shedding budget is
well under the hog's step, and recovery is waited for as a condition, never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import generate_latest
from starlette.types import Receive, Scope, Send

from api.guard import GuardMiddleware
from api.metrics import Metrics
from api.overload import LoopLag, Shedder
from api.security import KeyGuard
from schemas.settings import ApiSettings
from tests.api.helpers import ApiProcess

pytestmark = pytest.mark.unit

BUDGET_S = 0.02
HOG_S = 0.08  # four times the budget: every probe wake-up is at least this late
WAIT_S = 10.0  # generous: the box running the tests may be busy


@contextlib.asynccontextmanager
async def hogged_loop() -> AsyncIterator[None]:
    """Block the running loop ``HOG_S`` at a time (like a CPU-bound loop) until exit."""
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(HOG_S)  # deliberately blocking: this is the overload
            await asyncio.sleep(0)

    task = asyncio.create_task(hog())
    try:
        yield
    finally:
        stop.set()
        await task


async def until(predicate: object, *, timeout_s: float = WAIT_S) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


class Inner:
    """The app behind the guard: answers 200 and counts what reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def guarded(shedder: Shedder, metrics: Metrics, inner: Inner) -> GuardMiddleware:
    return GuardMiddleware(
        inner,
        metrics=metrics,
        key_guard=KeyGuard(ApiSettings()),
        key_header="X-API-Key",
        max_concurrency=32,
        max_body_bytes=65_536,
        shedder=shedder,
    )


def sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_lag_probe_sees_a_blocked_loop_and_recovers() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        shedder = Shedder(budget_s=BUDGET_S, registry=metrics.registry)
        shedder.start()
        try:
            assert await until(lambda: shedder.lag.samples >= 5)
            assert await until(lambda: not shedder.overloaded())  # an idle loop is on time
            async with hogged_loop():
                assert await until(shedder.overloaded)
                assert shedder.lag.smoothed > BUDGET_S
                assert b"lakescore_api_loop_lag_seconds" in generate_latest(metrics.registry)
            assert await until(lambda: not shedder.overloaded())  # back once the hog stops
        finally:
            await shedder.stop()
        assert shedder.lag.smoothed == 0.0 and not shedder.overloaded()

    asyncio.run(scenario())


def test_a_lone_stall_does_not_shed() -> None:
    """One stall (a collector pass, a descheduled process) counts for a part of its length."""
    lag = LoopLag(weight=0.3)
    lag.observe(0.25)
    assert lag.smoothed < 0.1  # under the default budget
    for _ in range(20):
        lag.observe(0.25)  # a lasting lag counts in full
    assert lag.smoothed > 0.2
    for _ in range(20):
        lag.observe(0.0)
    assert lag.smoothed < 0.001


def test_guard_sheds_v1_while_the_loop_is_late_but_not_health() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        shedder = Shedder(budget_s=BUDGET_S, registry=metrics.registry)
        inner = Inner()
        app = guarded(shedder, metrics, inner)
        transport = httpx.ASGITransport(app=app)
        shedder.start()
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                assert (await client.get("/v1/customers/C1/predictions")).status_code == 200
                async with hogged_loop():
                    assert await until(shedder.overloaded)
                    reached = inner.calls
                    shed = await client.get("/v1/customers/C1/predictions")
                    batch = await client.post("/v1/predictions/batch", json={"customer_ids": []})
                    health = await client.get("/healthz")
                    assert inner.calls == reached + 1  # only /healthz reached the app
                assert shed.status_code == batch.status_code == 503
                assert shed.headers["retry-after"] == "1"
                assert shed.headers["x-request-id"]
                assert health.status_code == 200  # liveness answers under overload
                assert await until(lambda: not shedder.overloaded())
                after = await client.get("/v1/customers/C2/predictions")
                assert after.status_code == 200  # recovered: nothing left over
        finally:
            await shedder.stop()
        shed_single = {"route": "single", "reason": "loop_lag"}
        assert sample(metrics, "lakescore_api_shed_total", shed_single) == 1
        shed_batch = {"route": "batch", "reason": "loop_lag"}
        assert sample(metrics, "lakescore_api_shed_total", shed_batch) == 1
        overload = {"route": "single", "kind": "overload"}
        assert sample(metrics, "lakescore_api_errors_total", overload) == 1
        server = {"route": "single", "kind": "server"}
        assert sample(metrics, "lakescore_api_errors_total", server) == 0

    asyncio.run(scenario())


def test_budget_zero_turns_shedding_off() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        shedder = Shedder(budget_s=0.0, registry=metrics.registry)
        inner = Inner()
        transport = httpx.ASGITransport(app=guarded(shedder, metrics, inner))
        shedder.start()
        try:
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://api") as client,
                hogged_loop(),
            ):
                await asyncio.sleep(3 * HOG_S)
                answer = await client.get("/v1/customers/C1/predictions")
        finally:
            await shedder.stop()
        assert answer.status_code == 200 and inner.calls == 1
        assert shedder.lag.samples == 0  # no probe task at all

    asyncio.run(scenario())


def test_settings_defaults() -> None:
    cfg = ApiSettings()
    assert cfg.shed_after_ms == 100.0
    assert cfg.max_concurrency == 32


@pytest.mark.e2e
def test_the_served_app_probes_its_loop(api: ApiProcess) -> None:
    """Through uvicorn: the probe runs from the lifespan, its gauge and counter are exported."""
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    assert "# TYPE lakescore_api_loop_lag_seconds gauge" in text
    assert "# TYPE lakescore_api_shed_total counter" in text
    lag = next(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lakescore_api_loop_lag_seconds ")
    )
    assert 0.0 <= lag < 60.0
