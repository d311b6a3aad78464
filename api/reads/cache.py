"""The read cache: documents read from the store and answers rendered from them, both kept
until the next sync (``invalidate``).

A generation counter moves with every invalidation: a read or a rendering that started
before it (``generation`` taken then) does not re-fill the cache with old data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

Doc = dict[str, Any]


class Rendered(NamedTuple):
    """One answer ready to send: its JSON bytes, and what metrics and the log need."""

    body: bytes
    sources: tuple[str, ...]
    served: tuple[dict[str, Any], ...]


class ReadCache:
    """Bounded by ``max_entries`` (each of the two maps; 0: nothing is kept)."""

    def __init__(self, *, max_entries: int) -> None:
        self.max_entries = max_entries
        self.generation = 0
        self.docs: dict[str, Doc | None] = {}  # None: read, and not in the store
        # Rendered answers (JSON bytes) of single lookups of one model, for the day they
        # were rendered on (``stale`` depends on the date).
        self.rendered: dict[tuple[str, str], Rendered] = {}
        self.rendered_day: dt.date | None = None

    def remember(self, generation: int, docs: dict[str, Doc | None]) -> None:
        """Keep documents read in ``generation`` (else they may be older than the last sync)."""
        if self.max_entries <= 0 or generation != self.generation:
            return
        if len(self.docs) + len(docs) > self.max_entries:
            self.docs.clear()  # crude but bounded; a sync clears it anyway
        self.docs.update(docs)

    def rendered_answer(self, key: tuple[str, str], day: dt.date) -> Rendered | None:
        if day != self.rendered_day:
            self.rendered.clear()
            self.rendered_day = day
            return None
        return self.rendered.get(key)

    def remember_rendered(
        self, generation: int, key: tuple[str, str], day: dt.date, value: Rendered
    ) -> None:
        """Keep an answer rendered from data read in ``generation`` on ``day``."""
        if self.max_entries <= 0 or generation != self.generation or day != self.rendered_day:
            return
        if len(self.rendered) >= self.max_entries:
            self.rendered.clear()  # crude but bounded, as the documents
        self.rendered[key] = value

    def invalidate(self) -> None:
        self.generation += 1
        self.docs.clear()
        self.rendered.clear()
