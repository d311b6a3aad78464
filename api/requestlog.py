"""A sampled request log, written off the event loop (a buffer and a writer thread).

Each line is JSON: request id, route, customer id, model name and version, source,
latency, degraded. API keys and headers are never passed in, so they cannot leak.

The event loop only appends a tuple to a bounded deque (thread-safe, no lock, no
wake-up); the writer thread drains it every ``flush_s`` and formats there. A queue with
a listener woke that thread once per sampled request, and each wake-up took the GIL
from the loop in the middle of answering.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import sys
import threading
from typing import Any

LOGGER_NAME = "lakescore.api.requests"
MAX_BUFFERED = 100_000  # beyond this the oldest unwritten lines are dropped (it is a sample)


class RequestLog:
    def __init__(self, *, sample_rate: float, path: str = "", flush_s: float = 0.2) -> None:
        self.sample_rate = sample_rate
        self.flush_s = flush_s
        self.logger = logging.getLogger(LOGGER_NAME)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        target: logging.Handler = (
            logging.FileHandler(path, encoding="utf-8")
            if path
            else logging.StreamHandler(sys.stderr)
        )
        target.setFormatter(logging.Formatter("%(message)s"))
        self._target = target
        self._buffer: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=MAX_BUFFERED)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.logger.addHandler(self._target)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._drain()
        self.logger.removeHandler(self._target)
        self._target.close()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self._drain()

    def _drain(self) -> None:
        buffer = self._buffer
        while buffer:
            try:
                request_id, route, latency_s, degraded, answers = buffer.popleft()
            except IndexError:
                return
            line = {
                "request_id": request_id,
                "route": route,
                "latency_ms": round(latency_s * 1000, 3),
                "degraded": degraded,
                # Scores stay out of the sampled log (monitoring.served has them).
                "answers": [{k: v for k, v in a.items() if k != "score"} for a in answers],
            }
            self.logger.info(json.dumps(line, default=str))

    def sampled(self) -> bool:
        return self.sample_rate >= 1.0 or (
            self.sample_rate > 0.0 and random.random() < self.sample_rate
        )

    def record(
        self,
        *,
        request_id: str,
        route: str,
        latency_s: float,
        degraded: bool,
        answers: list[dict[str, Any]],
    ) -> None:
        """Buffer one line (the caller samples with :meth:`sampled`); ``answers`` has, per
        prediction served: customer_id, model_name, model_version, source."""
        self._buffer.append((request_id, route, latency_s, degraded, answers))
