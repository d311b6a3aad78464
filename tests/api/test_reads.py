"""The read path in process (``Reader`` over an in-memory store): cache, coalescing, the budget
and its breaker, the watermark poll, the known-ids filter and the rendered answers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from api.metrics import Metrics
from api.reads import Reader, Rendered, StoreUnavailableError
from schemas.settings import ApiSettings

pytestmark = pytest.mark.unit
DAY = dt.date(2026, 11, 25)


class CountingStore:
    """A store that counts its calls; ``fail`` makes every call raise, ``delay`` slows reads."""

    def __init__(self, docs: dict[str, dict[str, Any]], *, mark: Any = 1) -> None:
        self.docs = docs
        self.mark = mark
        self.calls: list[tuple[str, Any]] = []
        self.fail = False
        self.delay = 0.0
        self.invalidated = 0

    async def _io(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise PyMongoError("down")

    async def get(self, customer_id: str) -> dict[str, Any] | None:
        self.calls.append(("get", customer_id))
        await self._io()
        return self.docs.get(customer_id)

    async def get_many(self, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
        self.calls.append(("get_many", sorted(customer_ids)))
        await self._io()
        return {c: self.docs[c] for c in customer_ids if c in self.docs}

    async def watermark(self) -> Any:
        self.calls.append(("watermark", None))
        await self._io()
        return self.mark

    async def ids(self) -> list[str]:
        return list(self.docs)

    def invalidate(self) -> None:
        self.invalidated += 1

    async def priors(self) -> dict[str, dict[str, Any]]:
        self.calls.append(("priors", None))
        await self._io()
        return {"m": {"_id": "m", "prior": 0.1}}

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


def _docs(n: int = 5) -> dict[str, dict[str, Any]]:
    return {f"C{i}": {"_id": f"C{i}", "models": {}} for i in range(n)}


def run(
    scenario: Callable[[Reader, CountingStore], Awaitable[None]],
    *,
    store: CountingStore | None = None,
    **cfg: Any,
) -> Metrics:
    metrics = Metrics()
    the_store = store or CountingStore(_docs())

    async def main() -> None:
        reader = Reader(the_store, ApiSettings(**cfg), metrics=metrics)
        await reader.start()
        try:
            await scenario(reader, the_store)
        finally:
            await reader.stop()

    asyncio.run(main())
    return metrics


def reads(store: CountingStore) -> list[tuple[str, Any]]:
    return [c for c in store.calls if c[0] in ("get", "get_many")]


def test_the_cache_answers_until_the_watermark_moves() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        assert (await reader.get("C1")) == {"_id": "C1", "models": {}}
        assert (await reader.get("C1")) is not None
        assert (await reader.get_many(["C1", "C2"])).keys() == {"C1", "C2"}
        assert reads(store) == [("get", "C1"), ("get_many", ["C2"])]
        generation = reader.generation
        store.mark = 2
        await reader.poll_once()
        assert reader.generation == generation + 1 and store.invalidated == 2
        await reader.get("C1")
        assert reads(store)[-1] == ("get", "C1")

    run(scenario, known_ids_filter=False)


def test_no_cache_when_its_size_is_zero() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        await reader.get("C1")
        await reader.get("C1")
        await reader.get_many(["C1"])
        assert reads(store) == [("get", "C1"), ("get", "C1"), ("get_many", ["C1"])]

    run(scenario, cache_max_entries=0, known_ids_filter=False)


def test_a_full_cache_is_cleared_before_it_grows_past_its_bound() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        await reader.get_many(["C0", "C1"])
        await reader.get("C2")  # 2 + 1 > 2: cleared, then C2 kept
        await reader.get("C0")
        assert reads(store)[-1] == ("get", "C0")
        assert reader.cache_entries == 2

    run(scenario, cache_max_entries=2, known_ids_filter=False)


def test_lookups_arriving_while_a_read_is_out_share_one_round_trip() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        store.delay = 0.01
        first = asyncio.ensure_future(reader.get("C0"))
        await asyncio.sleep(0)  # C0 is out at the store
        rest = await asyncio.gather(reader.get("C1"), reader.get("C2"), reader.get("C1"))
        assert [d and d["_id"] for d in rest] == ["C1", "C2", "C1"]
        assert (await first)["_id"] == "C0"
        assert reads(store) == [("get", "C0"), ("get_many", ["C1", "C2"])]

    run(scenario, cache_max_entries=0, known_ids_filter=False)


def test_without_coalescing_every_lookup_reads_alone() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        store.delay = 0.01
        await asyncio.gather(reader.get("C0"), reader.get("C1"), reader.get("C2"))
        assert sorted(reads(store)) == [("get", "C0"), ("get", "C1"), ("get", "C2")]

    run(scenario, cache_max_entries=0, known_ids_filter=False, coalesce_reads=False)


def test_a_failed_shared_read_fails_every_waiter() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        store.delay = 0.01
        first = asyncio.ensure_future(reader.get("C0"))
        await asyncio.sleep(0)
        store.fail = True
        waiters = await asyncio.gather(reader.get("C1"), reader.get("C2"), return_exceptions=True)
        assert all(isinstance(w, StoreUnavailableError) for w in waiters)
        with pytest.raises(StoreUnavailableError):
            await first

    run(scenario, cache_max_entries=0, known_ids_filter=False)


def test_a_failure_marks_the_store_down_until_the_poll_sees_it_again() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        priors = await reader.priors()
        store.fail = True
        with pytest.raises(StoreUnavailableError):
            await reader.get("C1")
        assert not reader.store_up
        store.fail = False
        calls = len(store.calls)
        with pytest.raises(StoreUnavailableError, match="marked down"):
            await reader.get("C2")
        with pytest.raises(StoreUnavailableError):
            await reader.get_many(["C2"])
        assert (await reader.priors()) == priors  # the last ones read
        assert len(store.calls) == calls  # nothing reached the store
        generation = reader.generation
        await reader.poll_once()  # answers: up again, and everything read before is dropped
        assert reader.store_up and reader.generation == generation + 1
        assert (await reader.get("C2")) is not None

    run(scenario, known_ids_filter=False, store_retry_after_s=60)


def test_a_read_over_budget_is_unavailable_and_enough_in_a_row_mark_the_store_down() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        await asyncio.sleep(0.01)  # the poll loop's first poll answered
        store.delay = 0.2
        for _ in range(2):  # busy, not gone: each slow read fails alone
            with pytest.raises(StoreUnavailableError, match="TimeoutError"):
                await reader.get("C1")
            assert reader.store_up
        store.delay = 0.0
        assert (await reader.get("C1")) is not None  # an answer resets the count
        store.delay = 0.2
        for _ in range(2):
            with pytest.raises(StoreUnavailableError, match="TimeoutError"):
                await reader.get("C1")
        assert reader.store_up
        with pytest.raises(StoreUnavailableError, match="TimeoutError"):
            await reader.get("C1")
        assert not reader.store_up  # the third in a row
        calls = len(store.calls)
        with pytest.raises(StoreUnavailableError, match="marked down"):
            await reader.get("C1")
        assert len(store.calls) == calls

    run(
        scenario,
        known_ids_filter=False,
        store_timeout_ms=20,
        store_retry_after_s=60,
        store_trip_after=3,
        cache_max_entries=0,
        watermark_poll_s=60,  # only the reads count here
    )


def test_no_priors_ever_read_and_the_store_down_is_unavailable() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        store.fail = True
        with pytest.raises(StoreUnavailableError):
            await reader.priors()

    run(scenario, known_ids_filter=False)


def test_a_read_started_before_a_sync_does_not_refill_the_cache() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        store.delay = 0.02
        read = asyncio.ensure_future(reader.get("C1"))
        await asyncio.sleep(0.005)
        store.mark = 2
        store.delay = 0.0
        await reader.poll_once()
        await read
        assert reader.cache_entries == 0

    run(scenario, known_ids_filter=False)


def test_the_known_ids_filter_skips_absent_ids_once_built() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        for _ in range(100):
            if reader.known is not None:
                break
            await asyncio.sleep(0.01)
        assert reader.known is not None
        assert (await reader.get("NEW1")) is None
        assert (await reader.get_many(["NEW2", "C1"])) == {"NEW2": None, "C1": store.docs["C1"]}
        assert reads(store) == [("get_many", ["C1"])]
        store.mark = 2
        await reader.poll_once()  # a new sync: nothing skipped until the new filter is built
        assert reader.known is None

    metrics = run(scenario)
    assert metrics.registry.get_sample_value("lakescore_api_store_reads_skipped_total") == 2


def test_no_filter_without_a_watermark() -> None:
    async def scenario(reader: Reader, store: CountingStore) -> None:
        await asyncio.sleep(0.05)
        assert reader.known is None
        await reader.get("NEW1")
        assert reads(store) == [("get", "NEW1")]

    run(scenario, store=CountingStore(_docs(), mark=None))


def test_rendered_answers_are_kept_for_their_day_and_generation() -> None:
    value = Rendered(b"{}", ("batch",), ())

    async def scenario(reader: Reader, store: CountingStore) -> None:
        key = ("C1", "m")
        assert reader.rendered_answer(key, DAY) is None  # the first of the day
        reader.remember_rendered(reader.generation, key, DAY, value)
        assert reader.rendered_answer(key, DAY) == value
        old = reader.generation
        store.mark = 2
        await reader.poll_once()
        assert reader.rendered_answer(key, DAY) is None
        reader.remember_rendered(old, key, DAY, value)  # read before the sync: not kept
        assert reader.rendered_answer(key, DAY) is None
        reader.remember_rendered(reader.generation, key, DAY, value)
        assert reader.rendered_answer(key, DAY + dt.timedelta(days=1)) is None  # a new day
        reader.remember_rendered(reader.generation, key, DAY, value)  # not that day any more
        assert reader.rendered_answer(key, DAY + dt.timedelta(days=1)) is None

    run(scenario, known_ids_filter=False)
