"""Helpers (no tests) for the load scenario: an open-loop HTTP load generator over keep-alive
connections that counts every answer, checks known customers' scores (with the counters of
``counting.py``: degraded answers beyond a bounded share count as lost), and samples the
server's resident memory."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from tests.api.helpers import MODEL
from tests.reliability.counting import MAX_DEGRADED_SHARE, answer_outcome, lost_with_degraded

T = TypeVar("T")

CLIENT_TIMEOUT_S = 15.0  # an answer later than this counts as a hang


@dataclass
class Stats:
    seconds: float = 0.0
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    hung: int = 0  # no answer within CLIENT_TIMEOUT_S
    broken: Counter[str] = field(default_factory=Counter)  # connection errors, by exception
    answers: int = 0  # customer answers checked (a batch answers each of its ids)
    lost: int = 0  # a known customer answered as unknown (not degraded) or with a wrong score
    degraded: int = 0  # answers flagged degraded (store over its time budget)
    skipped: int = 0  # not sent: every connection of the generator was still waiting
    peak_rss_kb: int = 0
    max_degraded_share: float = MAX_DEGRADED_SHARE  # degraded answers excused up to this share
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    ok_latencies: list[float] = field(default_factory=list)  # seconds, 200s only
    shed_latencies: list[float] = field(default_factory=list)  # seconds, 429s and 503s

    @property
    def ok_per_s(self) -> float:
        return self.statuses[200] / self.seconds if self.seconds else 0.0

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def offered_per_s(self) -> float:
        return (self.sent + self.skipped) / self.seconds if self.seconds else 0.0

    def latency_ms(self, quantile: float, which: str = "all") -> float:
        """Latency quantile of every answer (``all``), the 200s (``ok``) or the refusals (``shed``)."""
        values = {"all": self.latencies, "ok": self.ok_latencies, "shed": self.shed_latencies}
        if not values[which]:
            return 0.0
        ordered = sorted(values[which])
        return 1e3 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    @property
    def shed(self) -> int:
        return self.statuses[503] + self.statuses[429]

    @property
    def degraded_share(self) -> float:
        return self.degraded / self.answers if self.answers else 0.0

    @property
    def rows_lost(self) -> int:
        """Lost answers, plus the degraded ones beyond ``max_degraded_share`` of the answers
        (a degraded answer is excused only while degraded answers stay rare)."""
        return lost_with_degraded(self.lost, self.degraded, self.answers, self.max_degraded_share)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the Mongo-wire server, uvicorn of a test)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


class _Conn:
    """One keep-alive HTTP/1.1 connection: a request out, its answer (status, body) back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise ConnectionError("answer without content-length")
        length = int(lower[at + 17 : lower.find(b"\r\n", at + 2)])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class LoadGenerator:
    """Single lookups and batches of 60 known + 40 new ids (half each): a page of customers.

    A hand-rolled HTTP/1.1 client on asyncio streams under uvloop: httpx with a hundred
    connections spends more CPU per request than the API does, so on a small machine the
    client, not the server, would be what saturates (and what the latencies measured).
    """

    def __init__(
        self, url: str, *, headers: dict[str, str], docs: dict[str, Any], pid: int, seed: int
    ) -> None:
        self.url = url
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port or 80)
        self.head = f"Host: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.docs = docs
        self.known = sorted(docs)
        self.pid = pid
        self.rng = random.Random(seed)
        self._idle: list[_Conn] = []

    def _score(self, customer: str) -> float:
        return float(self.docs[customer]["models"][MODEL]["score"])

    def _check(self, answer: dict[str, Any], stats: Stats) -> None:
        customer = answer["customer_id"]
        expected = self._score(customer) if customer in self.docs else None
        outcome = answer_outcome(answer, expected, model=MODEL)
        stats.answers += 1
        stats.degraded += outcome == "degraded"
        stats.lost += outcome == "lost"

    def _request(self) -> tuple[bytes, bool]:
        if self.rng.random() < 0.5:
            customer = self.rng.choice(self.known)
            line = f"GET /v1/customers/{customer}/predictions HTTP/1.1\r\n"
            return (line + self.head + "\r\n").encode(), False
        ids = self.rng.sample(self.known, 60) + [
            f"NEW{self.rng.randrange(10**9)}" for _ in range(40)
        ]
        body = json.dumps({"customer_ids": ids}).encode()
        head = (
            f"POST /v1/predictions/batch HTTP/1.1\r\n{self.head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body, True

    async def _one(self, stats: Stats) -> None:
        request, is_batch = self._request()
        started = time.monotonic()
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(CLIENT_TIMEOUT_S):
                if self._idle:
                    conn = self._idle.pop()
                else:
                    conn = _Conn(*await asyncio.open_connection(self.host, self.port))
                status, body = await conn.exchange(request)
        except TimeoutError:
            stats.hung += 1
            if conn is not None:
                conn.close()
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.broken[type(exc).__name__] += 1
            if conn is not None:
                conn.close()
            return
        self._idle.append(conn)
        elapsed = time.monotonic() - started
        stats.latencies.append(elapsed)
        if status == 200:
            stats.ok_latencies.append(elapsed)
        elif status in (429, 503):
            stats.shed_latencies.append(elapsed)
        stats.statuses[status] += 1
        if status == 200:
            payload = json.loads(body)
            for answer in payload["results"] if is_batch else [payload]:
                self._check(answer, stats)

    def _close_all(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _sample_rss(self, stats: Stats, done: asyncio.Event) -> None:
        while not done.is_set():
            stats.peak_rss_kb = max(stats.peak_rss_kb, rss_kb(self.pid))
            await asyncio.sleep(0.1)

    async def closed(self, *, workers: int, seconds: float) -> Stats:
        """``workers`` connections, each sending its next request when the last one answered."""
        stats = Stats()
        started = time.monotonic()
        end = started + seconds

        async def worker() -> None:
            while time.monotonic() < end:
                stats.sent += 1
                await self._one(stats)

        done = asyncio.Event()
        sampler = asyncio.create_task(self._sample_rss(stats, done))
        await asyncio.gather(*(worker() for _ in range(workers)))
        stats.seconds = time.monotonic() - started
        done.set()
        await sampler
        self._close_all()
        return stats

    async def open(self, *, rate_per_s: float, seconds: float, connections: int) -> Stats:
        """Requests started at a fixed rate whatever the answers (offered load), then drained.

        At most ``connections`` requests are outstanding (one per connection): when the
        server stops answering, the generator stops sending (``skipped``) instead of
        queueing work inside the client.
        """
        stats = Stats()
        outstanding: set[asyncio.Task[None]] = set()
        done = asyncio.Event()
        sampler = asyncio.create_task(self._sample_rss(stats, done))
        started = time.monotonic()
        offered = 0
        while (now := time.monotonic()) < started + seconds:
            due = int((now - started) * rate_per_s) + 1
            while offered < due:
                offered += 1
                if len(outstanding) >= connections:
                    stats.skipped += 1
                    continue
                stats.sent += 1
                task = asyncio.create_task(self._one(stats))
                outstanding.add(task)
                task.add_done_callback(outstanding.discard)
            await asyncio.sleep(0.002)
        stats.seconds = time.monotonic() - started
        await asyncio.gather(*outstanding)
        done.set()
        await sampler
        self._close_all()
        return stats


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run the generator on uvloop (cheaper per request than the default loop)."""
    return uvloop.run(coro)


def metric_sum(metrics_text: str, name: str, label: str = "") -> float:
    """Sum of the samples ``name{...}`` (Prometheus text) whose labels contain ``label``."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def server_errors(metrics_text: str) -> float:
    """``lakescore_api_errors_total{kind="server"}`` summed over routes (500s, not 503s)."""
    return metric_sum(metrics_text, "lakescore_api_errors_total", 'kind="server"')
