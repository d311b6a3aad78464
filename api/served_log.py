"""Every answer served, as rows of the Delta table ``monitoring.served`` (``api.served_log``).

One row per prediction answered: when, the request, the route, the customer, the
experiment and arm (``api.experiments``), the model and version, the score, the source,
degraded, the latency. The data for judging served predictions by what the customers did
later (the online evaluation joins them to later orders).

Off the request path: the event loop appends one tuple per request and one per
prediction (no dict). At most ``api.served_log_max_rows`` rows wait: beyond that new rows
are dropped and counted in ``lakescore_api_served_log_dropped_total``, so memory stays
bounded when the writer falls behind or the table cannot be written. A writer thread
appends the buffer to the table with delta-rs every ``api.served_log_flush_s`` or once
50,000 rows wait (so that no conversion holds the GIL long), and once more on graceful
shutdown (no Spark in the API). A failed write keeps its rows for the next flush (within
the bound) and is counted in ``lakescore_api_served_log_write_errors_total``. Several API
processes append to the same table (Delta's commit protocol orders them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from schemas.serving import CustomerPredictions
from schemas.tables import SERVED

log = logging.getLogger("lakescore.api.served")

_COLUMNS = [name for name, _ in SERVED.fields]


def arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {
        "STRING": pa.string(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([(name, kinds[kind]) for name, kind in SERVED.fields])


# What the event loop appends: one tuple per request (its columns, and how many predictions
# it answered) and one per prediction; the writer repeats each request's columns over its
# predictions in Arrow (a batch of 100 converts its request columns once, not 100 times).
_REQUEST = ("served_at", "request_id", "route", "degraded", "latency_ms")
_PREDICTION = (
    "customer_id",
    "experiment",
    "arm",
    "model_name",
    "model_version",
    "score",
    "source",
)


def _struct(names: tuple[str, ...], schema: Any) -> Any:
    import pyarrow as pa

    # served_at arrives as float seconds (time.time()); turned into microseconds in Arrow.
    return pa.struct(
        [(n, pa.float64() if n == "served_at" else schema.field(n).type) for n in names]
    )


class ServedLog:
    """Row buffers and their writer thread; ``record_*`` are the only calls on the loop."""

    def __init__(
        self,
        *,
        path: str,
        flush_s: float,
        max_rows: int,
        flush_rows: int = 50_000,
        dropped: Any = None,
        write_errors: Any = None,
    ) -> None:
        self.path = path
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.flush_rows = flush_rows  # a write starts early once this many rows wait
        self._dropped = dropped  # prometheus counters (None: not counted)
        self._write_errors = write_errors
        # _REQUEST's columns and the prediction count, per request; _PREDICTION's per row.
        self._requests: list[tuple[Any, ...]] = []
        self._rows: list[tuple[Any, ...]] = []
        # A failed write's requests and rows, written next time.
        self._kept: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
        self._table: Any = None  # the open DeltaTable, once written (no log replay per write)
        self._buffered = 0  # rows recorded and not yet written (the bound's count)
        self._swap = threading.Lock()  # the loop's appends against the writer's swap
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one write at a time (the thread, then stop)
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        try:  # fail at startup, not at the first flush
            import deltalake  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "api.served_log needs the deltalake package (pip install 'lakescore[analysts]'), "
                "or set api.served_log to false"
            ) from exc
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is buffered (graceful shutdown), then stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def _room(self, rows: int) -> bool:
        """Count ``rows`` in, or drop them when the buffer is full (called under ``_swap``)."""
        if self._buffered + rows > self.max_rows:
            self.dropped += rows
            if self._dropped is not None:
                self._dropped.inc(rows)
            return False
        self._buffered += rows
        # Rows waiting, not those a write has in flight: else every answer during a write
        # would wake the writer again, for a small second file right after it.
        if len(self._rows) + rows >= self.flush_rows and not self._wake.is_set():
            self._wake.set()
        return True

    def record_answers(
        self,
        *,
        request_id: str,
        route: str,
        latency_s: float,
        degraded: bool,
        rows: int,
        answers: Sequence[CustomerPredictions],
    ) -> None:
        """One row per prediction of ``answers`` (``rows`` of them)."""
        now, latency_ms = time.time(), latency_s * 1000
        with self._swap:
            if not self._room(rows):
                return
            rows_ = self._rows
            before = len(rows_)
            for a in answers:
                customer = a.customer_id
                for p in a.predictions:
                    rows_.append(
                        (
                            customer,
                            p.experiment,
                            p.arm,
                            p.model_name,
                            p.model_version,
                            p.score,
                            p.source,
                        )
                    )
            self._requests.append(
                (now, request_id, route, degraded, latency_ms, len(rows_) - before)
            )

    def record_served(
        self,
        *,
        request_id: str,
        route: str,
        latency_s: float,
        degraded: bool,
        served: Sequence[dict[str, Any]],
        at: float | None = None,
    ) -> None:
        """One row per prediction listed as ``api.respond.served`` lists them (a kept
        answer); ``at``: when it was served (seconds since the epoch; default now)."""
        now = time.time() if at is None else at
        with self._swap:
            if not self._room(len(served)):
                return
            self._rows.extend(
                (
                    a["customer_id"],
                    a.get("experiment"),
                    a.get("arm"),
                    a["model_name"],
                    a["model_version"],
                    a["score"],
                    a["source"],
                )
                for a in served
            )
            self._requests.append((now, request_id, route, degraded, latency_s * 1000, len(served)))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Append the buffered rows to the table; the number written (0 on failure)."""
        with self._lock:
            with self._swap:
                requests, self._requests = self._requests, []
                rows, self._rows = self._rows, []
            kept_requests, kept_rows = self._kept
            if kept_rows:
                requests, rows = kept_requests + requests, kept_rows + rows
                self._kept = ([], [])
            if not rows:
                return 0
            try:
                self._write(requests, rows)
            except Exception as exc:  # the table or its storage: keep the rows, count it
                log.warning("served log not written (%d rows kept): %s", len(rows), exc)
                if self._write_errors is not None:
                    self._write_errors.inc()
                self._kept = (requests, rows)
                self._table = None
                return 0
            with self._swap:
                self._buffered -= len(rows)
            self.written += len(rows)
            return len(rows)

    def _write(self, requests: list[tuple[Any, ...]], rows: list[tuple[Any, ...]]) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        from deltalake import DeltaTable, write_deltalake

        schema = arrow_schema()
        # Tuples to Arrow in one C++ pass each (a struct array), no transposition in Python.
        per_request = pa.array(
            requests, type=pa.struct([*_struct(_REQUEST, schema), pa.field("n", pa.int64())])
        )
        per_row = pa.array(rows, type=_struct(_PREDICTION, schema))
        counts = per_request.field("n").to_numpy()
        index = pa.array(np.repeat(np.arange(len(requests)), counts))
        # Seconds to microseconds in Arrow, not per row in Python (half to even, as round()).
        seconds = per_request.field("served_at")
        micros = pc.round(pc.multiply(seconds, 1e6)).cast(pa.int64())
        data = {"served_at": micros.cast(pa.timestamp("us", tz="UTC"))}
        data.update({n: per_request.field(n) for n in _REQUEST[1:]})
        data = {name: column.take(index) for name, column in data.items()}
        data.update({n: per_row.field(n) for n in _PREDICTION})
        data["served_date"] = pc.cast(data["served_at"], pa.date32())
        table = pa.table({name: data[name] for name in _COLUMNS}, schema=schema)
        target = self._table if self._table is not None else self.path
        write_deltalake(target, table, mode="append", partition_by=list(SERVED.partition_by))
        if self._table is None:
            self._table = DeltaTable(self.path)
