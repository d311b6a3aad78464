"""Holds the current cold-start model and swaps in a new champion without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from schemas.settings import Settings

from api.coldstart import ColdStartModel, ModelUnavailableError, fetch, load_cached, registered_name

log = logging.getLogger("lakescore.api.models")


class ModelHolder:
    """``current`` is replaced atomically (one attribute); readers never see half a model."""

    def __init__(self, settings: Settings) -> None:
        self.name = registered_name(settings.model.name)
        self.tracking_uri = settings.mlflow.tracking_uri
        cache_dir = settings.api.model_cache_dir or str(Path(settings.data_dir) / "api" / "models")
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self.refresh_s = settings.api.model_refresh_s
        self.load_timeout_s = settings.api.model_load_timeout_s
        self.current: ColdStartModel | None = None
        self.registry_ok = False
        self._inflight: asyncio.Future[ColdStartModel | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load at startup: the registry's champion, else the local cache; then refresh in the background."""
        await self.refresh()
        if self.current is None:
            try:
                self.current = await asyncio.to_thread(load_cached, self.cache_dir, name=self.name)
                log.warning(
                    "registry unavailable: serving cached %s v%s", self.name, self.current.version
                )
            except (ModelUnavailableError, OSError, ValueError) as exc:
                log.error("no cold-start model available: %s", exc)
        self._task = asyncio.create_task(self._loop(), name="coldstart-refresh")

    async def refresh(self) -> bool:
        """One registry check; True when a new version was swapped in."""
        if self._inflight is None or self._inflight.done():
            known = self.current.version if self.current else None
            self._inflight = asyncio.ensure_future(
                asyncio.to_thread(
                    fetch,
                    tracking_uri=self.tracking_uri,
                    name=self.name,
                    cache_dir=self.cache_dir,
                    known=known,
                )
            )
        try:
            model = await asyncio.wait_for(asyncio.shield(self._inflight), self.load_timeout_s)
        except Exception as exc:  # the registry's failures are many (HTTP, SQL, missing alias)
            self.registry_ok = False
            log.warning("cold-start registry check failed: %s: %s", type(exc).__name__, exc)
            return False
        self.registry_ok = True
        if model is None:
            return False
        previous = self.current.version if self.current else None
        self.current = model
        log.info("cold-start model %s: v%s -> v%s", self.name, previous, model.version)
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
