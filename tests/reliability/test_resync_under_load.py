"""Scenario 4: full resyncs (build a new collection, rename it over the live one) while a real
uvicorn API answers lookups over HTTP.

A ``predictions.current`` Delta table of a few thousand customers is synced in full to the
Mongo-wire server (SecantusDB over TCP), a uvicorn process of the API is started on it,
and a load thread keeps asking for known customers (single lookups, and batches of
known plus new ids) while the table is rescored ``RESYNCS`` times (new scores, a new
``model_version`` each) and each version is synced with ``sync_full`` (build, verify,
rename over the live collection with ``dropTarget``). Every answer is recorded and checked
against Delta: a known customer is always answered from the batch (``known``, source
``batch``, not degraded) with the score of one of the synced versions (the score of the
version its ``model_version`` names), always for the customer asked; a new id is never
answered as known; no request gets a 5xx (or any non-200). After the last swap every
customer is answered with the last version.

The API runs with its read cache off (``api.cache_max_entries=0``), so that lookups during
the swap reach MongoDB instead of the cache, and the known-ids Bloom filter on (the
default: it is rebuilt from the collection after every sync, and skipping a known
customer is one way to answer it as unknown). The store budget is raised and loop-lag
shedding is off so that a slow shared machine cannot produce degraded answers or 503s:
here those would only be noise, and any that remain are counted as failures.

Checked to fail: a resync that drops the live collection and rewrites it in place, and
one that drops it and then renames the build over it (two commands, not atomic), both
answer known customers as unknown here. It also caught a getMore race in the API's
``$in`` reads (``api/prediction_store.py``): when every id of a read was found, the server kept the
cursor open, the driver's ``getMore`` hit CursorNotFound after a rename, and the store was
marked down, so every lookup for a moment was answered degraded, from priors.
The thread-only row "4 full resync under readers" (``tests/integration/test_sync_faults.py``)
stays: it reads MongoDB directly, without the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pyarrow as pa
import pytest
from deltalake import DeltaTable as RustDeltaTable
from deltalake import write_deltalake
from pyspark.sql import SparkSession

from jobs.platform.lake import ensure_table, table_path
from jobs.sync.run import SyncResult, sync_full
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT
from tests.api.helpers import ApiProcess, api_env, start_api, wait_until
from tests.conftest import free_port
from tests.integration.test_sync import (
    MODEL,
    collection,
    customer_ids,
    isolated,
    rows,
)
from tests.reliability.counting import business_keys, duplicated
from tests.reliability.load import CLIENT_TIMEOUT_S, _Conn, run, server_errors

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

KEY = "resync-key-0123456789abcdef01"
HEADERS = {"X-API-Key": KEY}
CUSTOMERS = 3_000
RESYNCS = 4
WORKERS = 4  # keep-alive connections in a closed loop (far below api.max_concurrency)
KNOWN_PER_BATCH, NEW_PER_BATCH = 60, 40
MAX_REQUESTS = 30_000  # bounds of the load loop: whichever comes first
MAX_LOAD_S = 90.0
SOCKET_TIMEOUT_MS = 30_000  # both MongoDB clients of this scenario (see the test)


class Seen(NamedTuple):
    """One answer for one customer, as the API gave it (the main model's prediction)."""

    asked: str
    answered: str
    known: bool
    degraded: bool
    source: str | None  # None: no prediction of the main model in the answer
    model_version: str | None
    score: float | None


@dataclass
class Exchange:
    started: float  # time.monotonic()
    finished: float
    route: str  # "single" or "batch"
    status: int  # 0: no answer (timeout or connection error)
    error: str = ""
    answers: list[Seen] = field(default_factory=list)


def _seen(asked: str, answer: dict[str, Any]) -> Seen:
    main = [p for p in answer.get("predictions", []) if p.get("model_name") == MODEL]
    p = main[0] if main else {}
    return Seen(
        asked=asked,
        answered=answer.get("customer_id", ""),
        known=bool(answer.get("known")),
        degraded=bool(answer.get("degraded")),
        source=p.get("source"),
        model_version=p.get("model_version"),
        score=p.get("score"),
    )


class ResyncLoad:
    """Closed-loop lookups of known customers over keep-alive HTTP/1.1 connections (the
    hand-rolled client of ``load.py``), every exchange kept for checking afterwards."""

    def __init__(self, url: str, *, known: list[str], seed: int) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.head = f"Host: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        self.known = known
        self.rng = random.Random(seed)
        self.exchanges: list[Exchange] = []
        self.versions_seen: set[str] = set()  # model versions of known customers' answers

    def _request(self) -> tuple[str, list[str], bytes]:
        if self.rng.random() < 0.5:
            customer = self.rng.choice(self.known)
            line = f"GET /v1/customers/{customer}/predictions HTTP/1.1\r\n"
            return "single", [customer], (line + self.head + "\r\n").encode()
        ids = self.rng.sample(self.known, KNOWN_PER_BATCH) + [
            f"NEW{self.rng.randrange(10**9)}" for _ in range(NEW_PER_BATCH)
        ]
        self.rng.shuffle(ids)
        body = json.dumps({"customer_ids": ids}).encode()
        head = (
            f"POST /v1/predictions/batch HTTP/1.1\r\n{self.head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return "batch", ids, head.encode() + body

    async def _worker(self, stop: threading.Event, deadline: float) -> None:
        conn: _Conn | None = None
        while (
            not stop.is_set() and time.monotonic() < deadline and len(self.exchanges) < MAX_REQUESTS
        ):
            route, ids, request = self._request()
            started = time.monotonic()
            try:
                async with asyncio.timeout(CLIENT_TIMEOUT_S):
                    if conn is None:
                        conn = _Conn(*await asyncio.open_connection(self.host, self.port))
                    status, body = await conn.exchange(request)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if conn is not None:
                    conn.close()
                    conn = None
                self.exchanges.append(
                    Exchange(started, time.monotonic(), route, 0, error=type(exc).__name__)
                )
                continue
            exchange = Exchange(started, time.monotonic(), route, status)
            if status == 200:
                payload = json.loads(body)
                results = payload["results"] if route == "batch" else [payload]
                if len(results) != len(ids):
                    exchange.error = f"{len(results)} answers for {len(ids)} ids"
                exchange.answers = [_seen(a, r) for a, r in zip(ids, results, strict=False)]
                self.versions_seen.update(
                    s.model_version for s in exchange.answers if s.known and s.model_version
                )
            else:
                exchange.error = body[:200].decode("utf-8", "replace")
            self.exchanges.append(exchange)
        if conn is not None:
            conn.close()

    async def run(self, stop: threading.Event) -> None:
        deadline = time.monotonic() + MAX_LOAD_S
        await asyncio.gather(*(self._worker(stop, deadline) for _ in range(WORKERS)))


@dataclass
class Verdict:
    """Every recorded answer, classified against the Delta versions that were synced."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    known_answers: int = 0
    new_answers: int = 0
    sources: Counter[str] = field(default_factory=Counter)  # "known:batch", "new:prior", ...
    versions: Counter[str] = field(default_factory=Counter)  # model_version of known answers
    lost: int = 0  # a known customer answered as unknown, degraded or without a batch score
    wrong_score: int = 0  # a batch score that is no synced version's score for that customer
    wrong_customer: int = 0  # an answer for another id than the one asked
    phantom: int = 0  # a new id answered as known
    broken: int = 0  # requests without a well-formed answer
    examples: list[str] = field(default_factory=list)

    def bad(self, kind: str, item: Any) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {item}")


def judge(exchanges: list[Exchange], expected: dict[str, dict[str, float]]) -> Verdict:
    """``expected``: customer -> {model_version: score}, one entry per synced Delta version."""
    verdict = Verdict(requests=len(exchanges))
    for exchange in exchanges:
        verdict.statuses[exchange.status] += 1
        if exchange.status != 200 or exchange.error:
            verdict.bad("broken", exchange)
            continue
        for seen in exchange.answers:
            if seen.answered != seen.asked:
                verdict.bad("wrong_customer", seen)
            versions = expected.get(seen.asked)
            if versions is None:
                verdict.new_answers += 1
                verdict.sources[f"new:{seen.source}"] += 1
                if seen.known or seen.source == "batch":
                    verdict.bad("phantom", seen)
                continue
            verdict.known_answers += 1
            verdict.sources[f"known:{seen.source}"] += 1
            if not seen.known or seen.degraded or seen.source != "batch":
                verdict.bad("lost", seen)
                continue
            verdict.versions[str(seen.model_version)] += 1
            if seen.model_version not in versions or seen.score != versions[seen.model_version]:
                verdict.bad("wrong_score", seen)
    return verdict


def first_night(spark: SparkSession, settings: Settings, new_rows: list[tuple[Any, ...]]) -> int:
    """``predictions.current`` as scoring creates it (Spark: change data feed on, partitioned
    by model) with its first rows; returns the table version."""
    ensure_table(
        spark, settings, PREDICTIONS_CURRENT, properties={"delta.enableChangeDataFeed": "true"}
    )
    frame = spark.createDataFrame(new_rows, PREDICTIONS_CURRENT.ddl)
    frame.write.format("delta").mode("append").save(table_path(settings, PREDICTIONS_CURRENT))
    return int(RustDeltaTable(table_path(settings, PREDICTIONS_CURRENT)).version())


def rescore(settings: Settings, new_rows: list[tuple[Any, ...]]) -> int:
    """A night that rescored every customer: the main model's rows replaced in one overwrite
    (``replaceWhere``, as ``jobs.scoring.current.update_current`` does on a normal night);
    returns the new table version.

    Written with delta-rs rather than Spark: a Spark job for 3,000 rows took ~30 s here
    while the load kept both cores busy, and the writer is not what this scenario tests.
    """
    path = table_path(settings, PREDICTIONS_CURRENT)
    schema = RustDeltaTable(path).schema().to_arrow()
    columns = [list(c) for c in zip(*new_rows, strict=True)]
    names = [f.name for f in pa.schema(schema)]
    table = pa.table(dict(zip(names, columns, strict=True))).cast(pa.schema(schema))
    write_deltalake(path, table, mode="overwrite", predicate=f"model_name = '{MODEL}'")
    return int(RustDeltaTable(path).version())


def delta_scores(settings: Settings, version: int) -> dict[str, tuple[str, float]]:
    """customer -> (model_version, score) of the main model in ``predictions.current`` at
    ``version`` (read with delta-rs: no Spark job for a few thousand rows)."""
    table = RustDeltaTable(table_path(settings, PREDICTIONS_CURRENT), version=version)
    columns = ["customer_id", "model_name", "model_version", "score"]
    return {
        r["customer_id"]: (r["model_version"], r["score"])
        for r in table.to_pyarrow_table(columns=columns).to_pylist()
        if r["model_name"] == MODEL
    }


def start_lookup_api(root: Path, *, mongo_uri: str, database: str) -> tuple[ApiProcess, float]:
    """uvicorn on the serving database; with the seconds it took to answer ``/healthz``.

    No model registry: the lookups of this scenario never reach the cold-start model, and
    registering one (MLflow's SQLite migrations, then the API fetching it) took ~45 s of
    this test on a loaded machine. The registry is an address where nothing listens, so
    the API's one check at startup fails within ``model_load_timeout_s``, and ``/readyz``
    stays 503 (no cold-start model) while lookups are answered.
    """
    began = time.monotonic()
    env = api_env(
        workdir=root,
        mongo_uri=mongo_uri,
        database=database,
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        keys=[KEY],
        cache_max_entries="0",  # every lookup reads MongoDB, also during the swap
        store_timeout_ms="10000",  # a slow shared machine is not a degraded store
        shed_after_ms="0",  # nor an overload: no loop-lag 503s
        model_load_timeout_s="1",
        model_refresh_s="600",
    )
    env["LAKESCORE_MONGO__SOCKET_TIMEOUT_MS"] = str(SOCKET_TIMEOUT_MS)
    api = start_api(env, log_path=root / "uvicorn.log", ready_path="/healthz")
    return api, time.monotonic() - began


def final_answers(url: str, ids: list[str]) -> list[Seen]:
    """Every known customer, once, through the batch endpoint (1,000 ids a request)."""
    out: list[Seen] = []
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
        for at in range(0, len(ids), 1000):
            chunk = ids[at : at + 1000]
            response = client.post("/v1/predictions/batch", json={"customer_ids": chunk})
            assert response.status_code == 200, response.text[:500]
            results = response.json()["results"]
            assert len(results) == len(chunk)
            out.extend(_seen(a, r) for a, r in zip(chunk, results, strict=True))
    return out


def first_source(url: str, customer: str) -> str | None:
    response = httpx.get(f"{url}/v1/customers/{customer}/predictions", headers=HEADERS)
    return _seen(customer, response.json()).source if response.status_code == 200 else None


def _overlapping(exchanges: list[Exchange], window: tuple[float, float]) -> int:
    return sum(e.started < window[1] and e.finished > window[0] for e in exchanges)


class Laps:
    """Seconds per phase of the test (printed with the figures, never asserted)."""

    def __init__(self) -> None:
        self.began = self.last = time.monotonic()
        self.phases: dict[str, float] = {}

    def __call__(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return time.monotonic() - self.began


def resync_under_load(
    spark: SparkSession,
    settings: Settings,
    api: ApiProcess,
    *,
    ids: list[str],
    laps: Laps,
) -> tuple[ResyncLoad, list[int], list[SyncResult], list[tuple[float, float]]]:
    """Lookups from a thread while ``RESYNCS`` rescored versions are each synced in full."""
    load = ResyncLoad(api.url, known=ids, seed=4)
    versions: list[int] = []
    results: list[SyncResult] = []
    windows: list[tuple[float, float]] = []
    stop = threading.Event()
    failure: list[BaseException] = []

    def generate() -> None:
        try:
            run(load.run(stop))
        except BaseException as exc:  # surfaced in the test's thread below
            failure.append(exc)

    # The API has seen the first sync's watermark (its priors are those of that sync).
    assert wait_until(lambda: first_source(api.url, "NEW0") == "prior")
    thread = threading.Thread(target=generate, name="resync-load", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(load.exchanges) >= 50 or not thread.is_alive())
        laps("load_warmup")
        for n in range(RESYNCS):
            versions.append(rescore(settings, rows(ids, version=str(n + 2), seed=n + 1)))
            laps("rescore_delta")
            started = time.monotonic()
            results.append(sync_full(spark, settings))
            windows.append((started, time.monotonic()))
            laps("resync")
        # Answers of the last build have come back over HTTP, then a few more requests
        # (conditions, not timings).
        last, synced = str(RESYNCS + 1), windows[-1][1]
        wait_until(lambda: last in load.versions_seen or not thread.is_alive())
        wait_until(
            lambda: sum(e.started > synced for e in load.exchanges) >= 25 or not thread.is_alive()
        )
    finally:
        stop.set()
        thread.join(timeout=CLIENT_TIMEOUT_S + 30)
    assert not thread.is_alive() and not failure, failure
    laps("load_tail")
    return load, versions, results, windows


@pytest.mark.slow  # make reliability
def test_full_resyncs_under_http_load_never_answer_a_known_customer_as_unknown(
    spark: SparkSession,
    settings: Settings,
    mongo_uri: str,
    tmp_path: Path,
    reliability_report: Any,
) -> None:
    laps = Laps()
    # The shared test server can stall for seconds: once, a rename at the default 5 s
    # socket timeout was retried into a 22 s swap while the API's reads timed out into
    # degraded answers. This scenario is about the swap's atomicity for readers; a store
    # that stops answering has its own scenarios. So the sync waits up to 30 s for one
    # operation, and the API up to its store timeout (10 s) instead of the socket's 5 s.
    env = isolated(settings, tmp_path, batch_size=500, socket_timeout_ms=SOCKET_TIMEOUT_MS)
    ids = customer_ids(CUSTOMERS)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-start") as pool:
        # uvicorn starts while Spark writes the table and the first sync runs.
        starting = pool.submit(
            start_lookup_api, tmp_path, mongo_uri=mongo_uri, database=env.mongo.database
        )
        try:
            delta_versions = [first_night(spark, env, rows(ids, version="1", seed=0))]
            first = sync_full(spark, env)
        except BaseException:
            with contextlib.suppress(Exception):
                starting.result()[0].stop()
            raise
        api, api_start_s = starting.result()
    assert first.mode == "full" and first.documents == CUSTOMERS
    laps("delta_first_sync_and_api_start")
    laps.phases["of which api_start"] = round(api_start_s, 1)
    try:
        load, versions, results, windows = resync_under_load(spark, env, api, ids=ids, laps=laps)
        delta_versions += versions
        after = final_answers(api.url, ids)
        metrics = httpx.get(f"{api.url}/metrics").text
    finally:
        api.stop()
    laps("api_stop")
    mongo = collection(env)
    keys = business_keys(mongo.find({}, {"models": 1, "customer_id": 1}))
    duplicates = duplicated(keys)  # by (customer, model) from the documents, not by _id
    mongo.database.client.drop_database(env.mongo.database)

    snapshots = [delta_scores(env, v) for v in delta_versions]
    expected: dict[str, dict[str, float]] = {}
    for snapshot in snapshots:
        assert len(snapshot) == CUSTOMERS
        assert len({mv for mv, _ in snapshot.values()}) == 1  # one model version per build
        for customer, (mv, score) in snapshot.items():
            expected.setdefault(customer, {})[mv] = score
    verdict = judge(load.exchanges, expected)
    final = judge([Exchange(0.0, 0.0, "batch", 200, answers=after)], expected)
    newest = {c: {snapshots[-1][c][0]: snapshots[-1][c][1]} for c in ids}
    stale_after = judge([Exchange(0.0, 0.0, "batch", 200, answers=after)], newest).wrong_score
    during = [_overlapping(load.exchanges, w) for w in windows]
    log = tmp_path / "responses.jsonl"
    with log.open("w") as out:  # started, finished, route, status, error, [Seen fields...]
        for e in load.exchanges:
            row = [e.started, e.finished, e.route, e.status, e.error, [list(a) for a in e.answers]]
            out.write(json.dumps(row) + "\n")
    laps("checks")

    five_xx = sum(n for status, n in verdict.statuses.items() if status >= 500)
    detail = (
        f"{verdict.requests} requests ({dict(sorted(verdict.statuses.items()))}), "
        f"{verdict.known_answers} known-customer answers by version "
        f"{dict(sorted(verdict.versions.items()))}, {verdict.new_answers} new-id answers; "
        f"sources {dict(sorted(verdict.sources.items()))}; requests overlapping each resync "
        f"{during}; swaps {[r.phases.get('swap') for r in results]} s, resyncs "
        f"{[round(r.seconds, 1) for r in results]} s; wrong score {verdict.wrong_score}, "
        f"wrong customer {verdict.wrong_customer}, new ids answered as known "
        f"{verdict.phantom}, broken {verdict.broken}; after the last swap "
        f"{final.known_answers} answered, {stale_after} not the last version; "
        f"{laps.total():.0f} s in all {laps.phases}; responses in {log}"
    )
    print(detail)
    reliability_report.record(
        scenario="4 full resync under HTTP load",
        load=f"{verdict.known_answers} lookups during {RESYNCS} swaps",
        faults=len(results),
        rows_lost=verdict.lost + final.lost,
        rows_duplicated=duplicates,
        detail=detail,
    )
    assert [r.mode for r in results] == ["full"] * RESYNCS
    assert all(r.verification.ok and r.documents == CUSTOMERS for r in results)
    assert five_xx == 0 and set(verdict.statuses) == {200}, verdict.examples
    assert verdict.broken == 0, verdict.examples
    assert verdict.lost == 0, verdict.examples
    assert verdict.wrong_score == verdict.wrong_customer == verdict.phantom == 0, verdict.examples
    # Priors are upserted, never swapped: a new id always gets the synced prior.
    assert set(verdict.sources) == {"known:batch", "new:prior"}, verdict.sources
    # The load spanned both swaps: answers of every synced build came back over HTTP.
    assert set(verdict.versions) == {str(v) for v in range(1, RESYNCS + 2)}, verdict.versions
    assert all(n > 0 for n in during), during
    assert final.known_answers == CUSTOMERS and final.lost == 0, final.examples
    assert stale_after == 0  # the cache (off here) and the filter do not hide the last swap
    assert duplicates == 0 and set(keys) == {(c, MODEL) for c in ids}
    assert server_errors(metrics) == 0
