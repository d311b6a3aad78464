"""A sampled request log, written off the event loop (a queue and a listener thread).

Each line is JSON: request id, route, customer id, model name and version, source,
latency, degraded. API keys and headers are never passed in, so they cannot leak.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import random
import sys
from typing import Any

LOGGER_NAME = "lakescore.api.requests"


class RequestLog:
    def __init__(self, *, sample_rate: float, path: str = "") -> None:
        self.sample_rate = sample_rate
        self.logger = logging.getLogger(LOGGER_NAME)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._queue_handler = logging.handlers.QueueHandler(self._queue)
        target: logging.Handler = (
            logging.FileHandler(path, encoding="utf-8")
            if path
            else logging.StreamHandler(sys.stderr)
        )
        target.setFormatter(logging.Formatter("%(message)s"))
        self._target = target
        self._listener = logging.handlers.QueueListener(self._queue, target)

    def start(self) -> None:
        self.logger.addHandler(self._queue_handler)
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()
        self.logger.removeHandler(self._queue_handler)
        self._target.close()

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
        """Write one line (the caller samples with :meth:`sampled`); ``answers`` has, per
        prediction served: customer_id, model_name, model_version, source."""
        line = {
            "request_id": request_id,
            "route": route,
            "latency_ms": round(latency_s * 1000, 3),
            "degraded": degraded,
            "answers": answers,
        }
        self.logger.info(json.dumps(line, default=str))
