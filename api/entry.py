"""The FastAPI application class of the lookup API: the guard in front of FastAPI's own layers.

FastAPI puts its generic layers (native OpenTelemetry, server errors, body size) outside
any user middleware, and asks OpenTelemetry on every request whether it is configured.
In process, those layers were about a third of a cold-start answer. Here the guard and
the ASGI shortcut (``front``) wrap FastAPI's whole middleware stack instead:

    front: GuardMiddleware -> LookupShortcut -> FastAPI's stack (server errors,
           body-size limit, exception handlers, routes)

- Every ``/v1`` request still passes the guard first (key, rate, overload, declared body
  size), as before.
- An answer of the shortcut (``api.asgi_shortcut``) needs none of FastAPI's layers: it
  reads at most ``api.max_body_bytes`` and hands anything else (with the body replayed) to
  the full stack, where the body-size limit, validation and error handlers apply as ever.
  An unhandled error becomes a 500 from uvicorn, as it would from ``ServerErrorMiddleware``.
- FastAPI's native OpenTelemetry wraps ``front`` whenever a provider is configured (checked
  at the first request and again every ``TELEMETRY_RECHECK`` requests); then requests
  take FastAPI's own entry unchanged. Without a provider that layer does nothing but ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

TELEMETRY_RECHECK = 1024


class LookupApp(FastAPI):
    def __init__(self, *, front: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front = front
        self._requests = 0
        self._telemetry_on: bool | None = None  # unknown until the first request

    def build_middleware_stack(self) -> ASGIApp:
        return self._front(super().build_middleware_stack())

    def _telemetry_enabled(self) -> bool:
        self._requests += 1
        on = self._telemetry_on
        if on is None or self._requests % TELEMETRY_RECHECK == 0:
            native = getattr(self, "_native_telemetry", None)  # FastAPI >= 0.16x
            on = self._telemetry_on = native is not None and bool(native.enabled())
        return on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or "fastapi.telemetry" in scope  # a mounted app: FastAPI's own handling
            or self._telemetry_enabled()
        ):
            await super().__call__(scope, receive, send)
            return
        # What FastAPI and Starlette do for an HTTP request without telemetry.
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        stack = self.middleware_stack
        if stack is None:
            stack = self.middleware_stack = self.build_middleware_stack()
        await stack(scope, receive, send)
