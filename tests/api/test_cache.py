"""The read cache: served until the sync's watermark moves, then re-read (a sync invalidates it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.api.conftest import DATABASE
from tests.api.helpers import MODEL, ApiProcess, doc, set_watermark, wait_until

pytestmark = pytest.mark.e2e


def _score(api: ApiProcess, headers: dict[str, str], cid: str) -> tuple[str, float]:
    resp = httpx.get(f"{api.url}/v1/customers/{cid}/predictions", headers=headers, timeout=10)
    [pred] = resp.json()["predictions"]
    return pred["source"], pred["score"]


def test_a_sync_invalidates_the_cache(
    api: ApiProcess, headers: dict[str, str], mongo_uri: str, api_docs: dict[str, Any]
) -> None:
    old = api_docs["C00298"]["models"][MODEL]["score"]
    assert _score(api, headers, "C00298") == ("batch", old)
    assert _score(api, headers, "NEW-CACHED")[0] == "prior"

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        coll = client[DATABASE]["predictions"]
        today = dt.datetime.now(dt.UTC).date()
        coll.replace_one({"_id": "C00298"}, doc("C00298", score=0.999, score_date=today))
        coll.insert_one(doc("NEW-CACHED", score=0.555, score_date=today))
        # Written but not yet announced by a watermark: the cache still answers.
        assert _score(api, headers, "C00298") == ("batch", old)
        assert _score(api, headers, "NEW-CACHED")[0] == "prior"

        set_watermark(client, database=DATABASE, version=2)  # what every sync does last
        assert wait_until(lambda: _score(api, headers, "C00298") == ("batch", 0.999))
        assert _score(api, headers, "NEW-CACHED") == ("batch", 0.555)
        batch = httpx.post(
            f"{api.url}/v1/predictions/batch",
            headers=headers,
            json={"customer_ids": ["C00298", "NEW-CACHED"]},
        ).json()
        assert [r["predictions"][0]["score"] for r in batch["results"]] == [0.999, 0.555]
    finally:
        client.close()


def _skipped(api: ApiProcess) -> float:
    for line in httpx.get(f"{api.url}/metrics").text.splitlines():
        if line.startswith("lakescore_api_store_reads_skipped_total "):
            return float(line.split()[1])
    return 0.0


def test_new_customers_skip_the_database(api: ApiProcess, headers: dict[str, str]) -> None:
    """Ids absent from the last sync are answered from the known-ids filter, not a DB read."""
    probes = iter(range(10**6))

    def filter_ready() -> bool:  # built after startup and after every watermark move
        before = _skipped(api)
        _score(api, headers, f"PROBE-{next(probes)}")
        return _skipped(api) > before

    assert wait_until(filter_ready)
    before = _skipped(api)
    ids = [f"BRAND-NEW-{i}" for i in range(50)]
    resp = httpx.post(
        f"{api.url}/v1/predictions/batch", headers=headers, json={"customer_ids": ids}
    )
    assert {r["predictions"][0]["source"] for r in resp.json()["results"]} == {"prior"}
    assert _skipped(api) - before >= 45  # a few may be Bloom false positives (read, then absent)
    [pred] = httpx.post(
        f"{api.url}/v1/customers/BRAND-NEW-1/coldstart",
        headers=headers,
        json={"context": {"channel": "web", "first_order_amount": 10.0}},
    ).json()["predictions"]
    assert pred["source"] == "coldstart"


def test_a_sync_invalidates_rendered_answers(
    api: ApiProcess, headers: dict[str, str], mongo_uri: str, api_docs: dict[str, Any]
) -> None:
    """Lookups of one model are kept rendered (JSON bytes) until the watermark moves."""

    def one(cid: str) -> tuple[str, float]:
        resp = httpx.get(
            f"{api.url}/v1/customers/{cid}/predictions",
            params={"model": MODEL},
            headers=headers,
            timeout=10,
        )
        [pred] = resp.json()["predictions"]
        return pred["source"], pred["score"]

    old = api_docs["C00296"]["models"][MODEL]["score"]
    assert one("C00296") == ("batch", old)
    assert one("C00296") == ("batch", old)  # the second one is served rendered
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        today = dt.datetime.now(dt.UTC).date()
        client[DATABASE]["predictions"].replace_one(
            {"_id": "C00296"}, doc("C00296", score=0.777, score_date=today)
        )
        assert one("C00296") == ("batch", old)  # not announced yet
        current = client[DATABASE]["sync_state"].find_one({"_id": "predictions"})
        version = int((current or {}).get("delta_version") or 1) + 1
        set_watermark(client, database=DATABASE, version=version)
        assert wait_until(lambda: one("C00296") == ("batch", 0.777))
    finally:
        client.close()
