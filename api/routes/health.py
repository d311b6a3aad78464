"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pymongo.errors import PyMongoError

from api.deps import StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(store: StoreDep, response: Response) -> dict[str, str]:
    try:
        await store.ping()
    except PyMongoError:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "store": "unreachable"}
    return {"status": "ready", "store": "ok"}
