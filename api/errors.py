"""Validation errors without the rejected input: nothing is echoed back (lone surrogates, huge
strings and would-be operators stay out of responses), so a bad request is always a clean 422."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError


def _safe(value: object) -> str | int:
    if isinstance(value, int):
        return value
    return str(value).encode("utf-8", "replace").decode("utf-8")[:64]


async def validation_error(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "loc": [_safe(part) for part in err.get("loc", ())],
            "msg": _safe(err.get("msg", "invalid")),
            "type": _safe(err.get("type", "value_error")),
        }
        for err in errors[:20]
    ]
    return Response(
        json.dumps({"detail": detail}),
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        media_type="application/json",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
