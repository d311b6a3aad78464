"""The app's entry (``api.entry``): the guard in front of FastAPI's layers, in process.

What moved must still hold: declared and streamed oversize bodies get 413, errors of the
ASGI shortcut are 500s counted as server errors, and FastAPI's native OpenTelemetry still
sees every request once a provider is configured.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import Services
from api.entry import LookupApp
from api.guard import GuardMiddleware
from api.main import create_app
from api.metrics import Metrics
from api.reads import Reader
from api.requestlog import RequestLog
from api.security import KeyGuard
from schemas.settings import ApiSettings, Settings
from tests.api.helpers import MODEL, doc, sha

pytestmark = pytest.mark.unit
KEY = "entry-key-0123456789"


class MemoryStore:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs

    async def get(self, customer_id: str) -> dict[str, Any] | None:
        return self.docs.get(customer_id)

    async def get_many(self, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {c: self.docs[c] for c in customer_ids if c in self.docs}

    async def watermark(self) -> Any:
        return None

    async def ids(self) -> list[str]:
        return list(self.docs)

    def invalidate(self) -> None:
        pass

    async def priors(self) -> dict[str, dict[str, Any]]:
        return {MODEL: {"_id": MODEL, "prior": 0.07, "model_version": "3"}}

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


class BrokenModel:
    registered_name, version = "broken", "1"

    def answer(self, context: Any) -> tuple[float, str]:
        raise RuntimeError("boom")


class Models:
    def __init__(self, current: Any = None) -> None:
        self.current, self.registry_ok = current, True


def in_process_app(*, model: Any = None) -> FastAPI:
    """The real app with its services set directly (no lifespan: no registry, no Mongo)."""
    settings = Settings(api=ApiSettings(api_key_sha256=[sha(KEY)], shed_after_ms=0))
    store = MemoryStore({"C1": doc("C1", score=0.4, score_date=dt.datetime.now(dt.UTC).date())})
    app = create_app(settings, store=store)
    app.middleware_stack = app.build_middleware_stack()  # built once, as on a first request
    metrics = guard_metrics(app)
    app.state.services = Services(
        settings=settings,
        store=store,
        reader=Reader(store, settings.api, metrics=metrics),
        models=Models(model),  # type: ignore[arg-type]
        metrics=metrics,
        request_log=RequestLog(sample_rate=0.0),
        key_guard=KeyGuard(settings.api),
    )
    return app


def guard_metrics(app: FastAPI) -> Metrics:
    """The metrics the app's guard counts into (the outermost layer of its stack)."""
    guard = app.middleware_stack
    assert isinstance(guard, GuardMiddleware)
    return guard.metrics


async def _client(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def run(app: ASGIApp, scenario: Any) -> Any:
    async def main() -> Any:
        async for client in _client(app):
            return await scenario(client)

    return asyncio.run(main())


def test_fast_path_answers_behind_the_guard() -> None:
    app = in_process_app()
    headers = {"X-API-Key": KEY}

    async def scenario(client: httpx.AsyncClient) -> None:
        ok = await client.get(f"/v1/customers/C1/predictions?model={MODEL}", headers=headers)
        assert ok.status_code == 200 and ok.json()["predictions"][0]["source"] == "batch"
        assert ok.headers["x-request-id"]
        assert (await client.get("/v1/customers/C1/predictions")).status_code == 401
        assert (await client.get("/healthz")).status_code == 200

    run(app, scenario)


def test_declared_and_streamed_oversize_bodies_are_413() -> None:
    app = in_process_app()
    headers = {"X-API-Key": KEY, "content-type": "application/json"}
    limit = ApiSettings().max_body_bytes
    big = b'{"context": {"country": "' + b"A" * (limit + 10) + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: chunked
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    async def scenario(client: httpx.AsyncClient) -> None:
        declared = await client.post("/v1/customers/N1/coldstart", headers=headers, content=big)
        assert declared.status_code == 413 and declared.headers["x-request-id"]
        streamed = await client.post(
            "/v1/customers/N1/coldstart", headers=headers, content=chunks()
        )
        assert streamed.status_code == 413
        batch = await client.post("/v1/predictions/batch", headers=headers, content=chunks())
        assert batch.status_code == 413

    run(app, scenario)
    metrics = guard_metrics(app)
    value = metrics.registry.get_sample_value(
        "lakescore_api_errors_total", {"route": "coldstart", "kind": "too_large"}
    )
    assert value == 2


def test_a_fast_path_error_is_a_counted_500() -> None:
    app = in_process_app(model=BrokenModel())
    headers = {"X-API-Key": KEY}

    async def scenario(client: httpx.AsyncClient) -> int:
        resp = await client.post(
            "/v1/customers/N2/coldstart", headers=headers, json={"context": {"country": "US"}}
        )
        return resp.status_code

    assert run(app, scenario) == 500
    metrics = guard_metrics(app)
    value = metrics.registry.get_sample_value(
        "lakescore_api_errors_total", {"route": "coldstart", "kind": "server"}
    )
    assert value == 1
    assert metrics.registry.get_sample_value("lakescore_api_in_flight") == 0


def _answering_front(stack: ASGIApp) -> ASGIApp:
    """A front that answers ``/v1/fast`` itself and passes the rest to FastAPI's stack."""

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/fast":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"fast"})
            return
        await stack(scope, receive, send)

    return front


@pytest.mark.parametrize("traced", [False, True])
def test_native_telemetry_sees_front_answers_once_configured(traced: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry: dict[str, Any] = {"tracer_provider": provider} if traced else {}
    app = LookupApp(front=_answering_front, telemetry=telemetry)

    @app.get("/v1/routed")
    async def routed() -> Response:
        return Response(b"routed")

    async def scenario(client: httpx.AsyncClient) -> list[str]:
        fast = await client.get("/v1/fast")
        slow = await client.get("/v1/routed")
        return [fast.text, slow.text]

    assert run(app, scenario) == ["fast", "routed"]
    spans = exporter.get_finished_spans()
    assert (len(spans) >= 2) if traced else (spans == ())
