"""One pure-ASGI layer in front of the API: load shedding, request ids, bounded concurrency,
body size, error counts.

Pure ASGI (not ``BaseHTTPMiddleware``) so that the hot path pays a few attribute
look-ups, not an extra task and stream per request.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics
from api.overload import Shedder
from api.security import KeyGuard

REQUEST_ID_HEADER = b"x-request-id"
_REJECT_KIND = {401: "auth", 413: "too_large", 422: "invalid", 429: "rate", 503: "unavailable"}


class GuardMiddleware:
    """Only ``/v1`` routes are limited: health, readiness and metrics must answer under overload."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        key_guard: KeyGuard,
        key_header: str,
        max_concurrency: int,
        max_body_bytes: int,
        shedder: Shedder | None = None,
    ) -> None:
        self.app = app
        self.shedder = shedder
        self.metrics = metrics
        self.key_guard = key_guard
        self.key_header = key_header.lower().encode("latin-1")
        self.max_concurrency = max_concurrency
        self.max_body_bytes = max_body_bytes
        self.in_flight = 0
        # The gauge reads the count when scraped (not an inc/dec with a lock per request).
        metrics.in_flight.set_function(lambda: self.in_flight)
        self._prefix = f"{os.getpid():x}-"
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        route = route_label(scope["path"])
        request_id = self._prefix + str(next(self._ids))
        state = scope.setdefault("state", {})
        state["request_id"], state["t0"] = request_id, time.perf_counter()
        shedder = self.shedder
        if shedder is not None and shedder.overloaded():  # before any work: the loop is late
            shedder.count(route, "loop_lag")
            self.metrics.errors.labels(route, "overload").inc()
            await _reply(send, 503, "overloaded, retry shortly", request_id, retry_after=b"1")
            return
        try:  # API key and rate limit first: cheap, and no slot for an unknown caller
            self.key_guard.check(_header(scope, self.key_header))
        except HTTPException as exc:
            self.metrics.errors.labels(route, _REJECT_KIND.get(exc.status_code, "auth")).inc()
            retry = (exc.headers or {}).get("Retry-After")
            await _reply(
                send,
                exc.status_code,
                str(exc.detail),
                request_id,
                retry_after=retry.encode() if retry else None,
                challenge=exc.status_code == 401,
            )
            return
        if self.in_flight >= self.max_concurrency:
            if shedder is not None:
                shedder.count(route, "concurrency")
            self.metrics.errors.labels(route, "overload").inc()
            await _reply(send, 503, "overloaded, retry shortly", request_id, retry_after=b"1")
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            self.metrics.errors.labels(route, "too_large").inc()
            await _reply(send, 413, "request body too large", request_id)
            return
        status_box = [0]

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, tagged_send)  # chunked bodies: FastAPI's max_body_size
        except Exception:
            status_box[0] = 500
            raise
        finally:
            self.in_flight -= 1
            code = status_box[0]
            if code >= 500:
                self.metrics.errors.labels(route, "server" if code != 503 else "unavailable").inc()
            elif code in _REJECT_KIND:
                self.metrics.errors.labels(route, _REJECT_KIND[code]).inc()


def route_label(path: str) -> str:
    """A fixed label per route (never a piece of the path: ids must not become label values)."""
    if path.startswith("/v1/customers/"):
        return "coldstart" if path.endswith("/coldstart") else "single"
    if path.startswith("/v1/predictions/batch"):
        return "batch"
    return "other"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


async def _reply(
    send: Send,
    status: int,
    detail: str,
    request_id: str,
    *,
    retry_after: bytes | None = None,
    challenge: bool = False,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, request_id.encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after))
    if challenge:
        headers.append((b"www-authenticate", b"ApiKey"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
