"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Sources whose answer was read from synced data (the stale-answer count's sources).
SYNCED_SOURCES = ("batch", "prior")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "lakescore_api_request_seconds",
            "Time to answer, by route and answer source.",
            ["route", "source"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "lakescore_api_answers",
            "Predictions served, by route and source (batch, coldstart, segment_prior, prior, default).",
            ["route", "source"],
            registry=self.registry,
        )
        self.degraded = Counter(
            "lakescore_api_degraded",
            "Answers given without the serving store.",
            ["route"],
            registry=self.registry,
        )
        self.errors = Counter(
            "lakescore_api_errors",
            "Requests that failed: 5xx (kind=server) or rejected (auth, rate, overload, too_large).",
            ["route", "kind"],
            registry=self.registry,
        )
        self.store_skipped = Counter(
            "lakescore_api_store_reads_skipped",
            "Lookups answered without a database read: the id is not in the last sync.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "lakescore_api_in_flight", "Requests being answered.", registry=self.registry
        )
        self.cache_entries = Gauge(
            "lakescore_api_cache_entries", "Documents in the read cache.", registry=self.registry
        )
        self.model_version = Gauge(
            "lakescore_api_coldstart_model_version",
            "Version of the cold-start model being served (0: none).",
            registry=self.registry,
        )
        # The served data (api.reads.served), set when scraped.
        self.data_age = Gauge(
            "lakescore_served_data_age_seconds",
            "Seconds since the last completed sync of the data being served "
            "(sync_state synced_at; NaN until one is seen).",
            registry=self.registry,
        )
        self.score_date = Gauge(
            "lakescore_served_score_date",
            "Newest score date in the served data, per model, as a unix timestamp (midnight UTC).",
            ["model"],
            registry=self.registry,
        )
        self.stale_answers = Counter(
            "lakescore_api_stale_answers",
            "Answers read from synced data (batch scores, priors) whose last completed sync "
            "is older than api.sync_stale_after_hours.",
            ["route"],
            registry=self.registry,
        )
        self.served_dropped = Counter(
            "lakescore_api_served_log_dropped",
            "Answers not written to monitoring.served: its buffer (api.served_log_max_rows) "
            "was full.",
            registry=self.registry,
        )
        self.served_write_errors = Counter(
            "lakescore_api_served_log_write_errors",
            "Appends to monitoring.served that failed (their rows kept for the next one).",
            registry=self.registry,
        )
        # Label children by value (``labels()`` takes a lock and builds a key on every call).
        self._answers: dict[tuple[str, str], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}
        self._stale: dict[str, Any] = {}

    def observe(
        self,
        *,
        route: str,
        sources: Iterable[str],
        seconds: float,
        degraded: bool,
        stale: bool = False,
    ) -> str:
        """Count every answer's source; time the request under its source (``mixed`` if several);
        ``stale``: the served data is past its bound, count the answers read from it."""
        counts: dict[str, int] = {}
        for source in sources:
            counts[source] = counts.get(source, 0) + 1
        answers = self._answers
        for source, n in counts.items():
            child = answers.get((route, source))
            if child is None:
                child = answers[(route, source)] = self.answers.labels(route, source)
            child.inc(n)
        label = next(iter(counts)) if len(counts) == 1 else ("mixed" if counts else "none")
        child = self._latency.get((route, label))
        if child is None:
            child = self._latency[(route, label)] = self.latency.labels(route, label)
        child.observe(seconds)
        if degraded:
            self.degraded.labels(route).inc()
        if stale:
            n = sum(counts.get(source, 0) for source in SYNCED_SOURCES)
            if n:
                child = self._stale.get(route)
                if child is None:
                    child = self._stale[route] = self.stale_answers.labels(route)
                child.inc(n)
        return label
