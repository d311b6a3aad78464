"""The OpenAPI document: the API-key header declared once, required on every ``/v1`` operation.

The key is checked in ``GuardMiddleware`` (not a FastAPI dependency, which costs more than
the rest of a cache hit), so the scheme is added to the generated document here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEME = "APIKeyHeader"


def declare_api_key(app: FastAPI, *, header: str) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {})[SCHEME] = {
                "type": "apiKey",
                "in": "header",
                "name": header,
                "description": "Your API key (only its sha256 digest is stored server-side).",
            }
            for path, operations in schema.get("paths", {}).items():
                if path.startswith("/v1/"):
                    for operation in operations.values():
                        operation["security"] = [{SCHEME: []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
