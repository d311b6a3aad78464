"""Helpers (no tests) for the load scenario: an open-loop HTTP load generator over keep-alive
connections that counts every answer, checks known customers' scores, and samples the
server's resident memory."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.api.helpers import MODEL

CLIENT_TIMEOUT_S = 15.0  # an answer later than this counts as a hang


@dataclass
class Stats:
    seconds: float = 0.0
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    hung: int = 0  # no answer within CLIENT_TIMEOUT_S (or the connection broke)
    lost: int = 0  # a known customer answered as unknown (not degraded) or with a wrong score
    degraded: int = 0  # answers flagged degraded (store over its time budget)
    skipped: int = 0  # not sent: every connection of the generator was still waiting
    peak_rss_kb: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests

    @property
    def ok_per_s(self) -> float:
        return self.statuses[200] / self.seconds if self.seconds else 0.0

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def offered_per_s(self) -> float:
        return (self.sent + self.skipped) / self.seconds if self.seconds else 0.0

    def latency_ms(self, quantile: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1e3 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    @property
    def shed(self) -> int:
        return self.statuses[503] + self.statuses[429]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class LoadGenerator:
    """Single lookups and batches of 60 known + 40 new ids (half each): a page of customers."""

    def __init__(
        self, url: str, *, headers: dict[str, str], docs: dict[str, Any], pid: int, seed: int
    ) -> None:
        self.url = url
        self.headers = headers
        self.docs = docs
        self.known = sorted(docs)
        self.pid = pid
        self.rng = random.Random(seed)

    def _score(self, customer: str) -> float:
        return float(self.docs[customer]["models"][MODEL]["score"])

    def _check(self, answer: dict[str, Any], stats: Stats) -> None:
        customer = answer["customer_id"]
        if answer["degraded"]:
            stats.degraded += 1
            return
        if customer not in self.docs:
            return
        batch = [p for p in answer["predictions"] if p["model_name"] == MODEL]
        if not answer["known"] or not batch or batch[0]["score"] != self._score(customer):
            stats.lost += 1

    async def _one(self, client: httpx.AsyncClient, stats: Stats) -> None:
        started = time.monotonic()
        try:
            if self.rng.random() < 0.5:
                customer = self.rng.choice(self.known)
                resp = await client.get(f"{self.url}/v1/customers/{customer}/predictions")
                answers = [resp.json()] if resp.status_code == 200 else []
            else:
                ids = self.rng.sample(self.known, 60) + [
                    f"NEW{self.rng.randrange(10**9)}" for _ in range(40)
                ]
                resp = await client.post(
                    f"{self.url}/v1/predictions/batch", json={"customer_ids": ids}
                )
                answers = resp.json()["results"] if resp.status_code == 200 else []
        except httpx.HTTPError:
            stats.hung += 1
            return
        stats.latencies.append(time.monotonic() - started)
        stats.statuses[resp.status_code] += 1
        for answer in answers:
            self._check(answer, stats)

    async def _sample_rss(self, stats: Stats, done: asyncio.Event) -> None:
        while not done.is_set():
            stats.peak_rss_kb = max(stats.peak_rss_kb, rss_kb(self.pid))
            await asyncio.sleep(0.1)

    async def closed(self, *, workers: int, seconds: float) -> Stats:
        """``workers`` connections, each sending its next request when the last one answered."""
        stats = Stats()
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        async with httpx.AsyncClient(
            headers=self.headers, timeout=CLIENT_TIMEOUT_S, limits=limits
        ) as client:
            started = time.monotonic()
            end = started + seconds

            async def worker() -> None:
                while time.monotonic() < end:
                    stats.sent += 1
                    await self._one(client, stats)

            done = asyncio.Event()
            sampler = asyncio.create_task(self._sample_rss(stats, done))
            await asyncio.gather(*(worker() for _ in range(workers)))
            stats.seconds = time.monotonic() - started
            done.set()
            await sampler
        return stats

    async def open(self, *, rate_per_s: float, seconds: float, connections: int) -> Stats:
        """Requests started at a fixed rate whatever the answers (offered load), then drained.

        At most ``connections`` requests are outstanding: when the server stops answering, the
        generator stops sending (``skipped``) instead of queueing work inside the client.
        """
        stats = Stats()
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        outstanding: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(
            headers=self.headers, timeout=CLIENT_TIMEOUT_S, limits=limits
        ) as client:
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
                    task = asyncio.create_task(self._one(client, stats))
                    outstanding.add(task)
                    task.add_done_callback(outstanding.discard)
                await asyncio.sleep(0.002)
            stats.seconds = time.monotonic() - started
            await asyncio.gather(*outstanding)
            done.set()
            await sampler
        return stats


def server_errors(metrics_text: str) -> float:
    """``lakescore_api_errors_total{kind="server"}`` summed over routes (500s, not 503s)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("lakescore_api_errors_total{") and 'kind="server"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
