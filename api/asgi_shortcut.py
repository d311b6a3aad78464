"""An ASGI shortcut in front of FastAPI for the hottest calls:
``GET /v1/customers/{id}/predictions[?model=m]`` and ``POST /v1/customers/{id}/coldstart``.

When a request is plainly valid (an id and an optional model matching the same
patterns as the route, no other query parameter, nothing percent-encoded; for cold
start a JSON body that the route's own request model accepts), it is answered here
with the same lookup as the route (``api.lookup_service``), skipping FastAPI's routing
and parameter machinery: most of a cache hit's cost. Anything else falls through to the
FastAPI route (with the body replayed), which validates and answers (or refuses) as usual.
It never imports the routes (``tests/unit/test_layout.py`` checks).
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from schemas.serving import CUSTOMER_ID_PATTERN, MODEL_NAME_PATTERN, ColdStartRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import Services
from api.lookup_service import coldstart_lookup, single_lookup, today
from api.reads import Rendered
from api.respond import record, record_sources, served

_ID = re.compile(CUSTOMER_ID_PATTERN)
_MODEL = re.compile(MODEL_NAME_PATTERN)
_PREFIX = "/v1/customers/"
_SUFFIX = "/predictions"
_COLD_SUFFIX = "/coldstart"
_JSON = b"application/json"
_HEADERS = [(b"content-type", b"application/json")]


def plain_single_lookup(scope: Scope) -> tuple[str, str | None] | None:
    """``(customer_id, model)`` when the request needs no further validation, else None."""
    if scope["method"] != "GET":
        return None
    path: str = scope["path"]
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    customer_id = path[len(_PREFIX) : -len(_SUFFIX)]
    if _ID.fullmatch(customer_id) is None or b"%" in scope.get("raw_path", b"%"):
        return None
    query: bytes = scope.get("query_string", b"")
    if not query:
        return customer_id, None
    if not query.startswith(b"model=") or b"&" in query or b"%" in query or b"+" in query:
        return None
    model = query[6:].decode("ascii", "replace")
    return (customer_id, model) if _MODEL.fullmatch(model) else None


def plain_coldstart(scope: Scope) -> str | None:
    """The customer id of a plainly addressed JSON cold-start request, else None."""
    if scope["method"] != "POST" or scope.get("query_string"):
        return None
    path: str = scope["path"]
    if not (path.startswith(_PREFIX) and path.endswith(_COLD_SUFFIX)):
        return None
    customer_id = path[len(_PREFIX) : -len(_COLD_SUFFIX)]
    if _ID.fullmatch(customer_id) is None or b"%" in scope.get("raw_path", b"%"):
        return None
    content_type = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"")
    return customer_id if content_type == _JSON else None


class LookupShortcut:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        plain = plain_single_lookup(scope)
        if plain is not None:
            await self._single(scope, send, customer_id=plain[0], model=plain[1])
            return
        cold_id = plain_coldstart(scope)
        if cold_id is None:
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive, self.max_body_bytes)
        request = None
        if complete:
            try:
                request = ColdStartRequest.model_validate_json(body)
            except ValidationError:
                request = None
        if request is None:  # FastAPI gives the usual answer (422, 413) for this body
            await self.app(scope, _replay(body, receive, complete), send)
            return
        services = scope["app"].state.services
        result = await coldstart_lookup(services, customer_id=cold_id, context=request.context)
        record(scope, services, route="coldstart", answers=[result], degraded=result.degraded)
        await _json(send, result.model_dump_json().encode())

    async def _single(
        self, scope: Scope, send: Send, *, customer_id: str, model: str | None
    ) -> None:
        """One customer; with a model named, an answer whose predictions all came from the
        batch is kept rendered until the next sync (or the next day: ``stale`` moves with
        the date). Answers with priors are not kept: priors have their own refresh."""
        services: Services = scope["app"].state.services
        reader = services.reader
        key, day = (customer_id, model or ""), today()
        kept = reader.rendered_answer(key, day) if model is not None else None
        if kept is not None:
            record_sources(
                scope,
                services,
                route="single",
                sources=list(kept.sources),
                served=lambda: list(kept.served),
                degraded=False,
            )
            await _json(send, kept.body)
            return
        generation = reader.generation
        result = await single_lookup(services, customer_id=customer_id, model=model)
        record(scope, services, route="single", answers=[result], degraded=result.degraded)
        body = result.model_dump_json().encode()
        sources = tuple(p.source for p in result.predictions)
        if (
            model is not None
            and reader.max_entries > 0
            and not result.degraded
            and all(s == "batch" for s in sources)
        ):
            reader.remember_rendered(
                generation, key, day, Rendered(body, sources, tuple(served([result])))
            )
        await _json(send, body)


async def _json(send: Send, body: bytes) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body, and whether it is complete and within ``limit`` (else stop reading)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive, complete: bool) -> Receive:
    """Hand the already-read bytes to the next app first, then the rest of the stream."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed
