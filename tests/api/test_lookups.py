"""Every answer tier over HTTP: batch hits, staleness, priors, batch lookups, cold start."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pytest

from schemas.coldstart import ColdStartContext, ColdStartSpec, encode
from tests.api.helpers import COLDSTART_NAME, GLOBAL_PRIOR, MODEL, ApiProcess

pytestmark = pytest.mark.e2e


def get(api: ApiProcess, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
    return httpx.get(api.url + path, headers=headers, timeout=10, **kw)


def post(api: ApiProcess, path: str, headers: dict[str, str], body: Any) -> httpx.Response:
    return httpx.post(api.url + path, headers=headers, json=body, timeout=10)


def test_known_customer_gets_its_batch_score(
    api: ApiProcess, headers: dict[str, str], api_docs: dict[str, Any]
) -> None:
    resp = get(api, "/v1/customers/C00042/predictions", headers)
    assert resp.status_code == 200
    body = resp.json()
    expected = api_docs["C00042"]["models"][MODEL]
    assert body["customer_id"] == "C00042"
    assert body["known"] is True and body["degraded"] is False
    [pred] = body["predictions"]
    assert pred["source"] == "batch"
    assert pred["model_name"] == MODEL
    assert pred["score"] == expected["score"]
    assert pred["model_version"] == "3"
    assert pred["score_date"] == expected["score_date"]
    assert pred["scored_at"].startswith(expected["score_date"])
    assert pred["stale"] is False
    assert resp.headers["x-request-id"]


def test_old_score_is_flagged_stale(api: ApiProcess, headers: dict[str, str]) -> None:
    [pred] = get(api, "/v1/customers/C00043/predictions", headers).json()["predictions"]
    assert pred["source"] == "batch"
    assert pred["stale"] is True
    age = dt.date.today() - dt.date.fromisoformat(pred["score_date"])
    assert age.days == 30


def test_all_models_or_one_model(api: ApiProcess, headers: dict[str, str]) -> None:
    every = get(api, "/v1/customers/C00000/predictions", headers).json()["predictions"]
    assert sorted(p["model_name"] for p in every) == ["churn_90d", MODEL]
    one = get(api, "/v1/customers/C00000/predictions", headers, params={"model": "churn_90d"})
    [pred] = one.json()["predictions"]
    assert (pred["model_name"], pred["score"], pred["source"]) == ("churn_90d", 0.9, "batch")


def test_unknown_customer_gets_the_prior_then_the_default(
    api: ApiProcess, headers: dict[str, str]
) -> None:
    body = get(api, "/v1/customers/NEW-1/predictions", headers).json()
    assert body["known"] is False
    [pred] = body["predictions"]
    assert (pred["source"], pred["score"], pred["model_version"]) == ("prior", 0.07, "3")
    assert pred["score_date"] is None and pred["scored_at"] is None
    other = get(api, "/v1/customers/NEW-1/predictions", headers, params={"model": "no_such"})
    [pred] = other.json()["predictions"]
    assert (pred["source"], pred["score"]) == ("default", 0.1)


def test_batch_lookup_answers_in_request_order(
    api: ApiProcess, headers: dict[str, str], api_docs: dict[str, Any]
) -> None:
    ids = [f"C{i:05d}" for i in range(0, 200, 2)] + ["NEW-2", "C00001", "C00002"]
    resp = post(api, "/v1/predictions/batch", headers, {"customer_ids": ids})
    assert resp.status_code == 200
    body = resp.json()
    assert body["degraded"] is False
    assert [r["customer_id"] for r in body["results"]] == ids
    for result in body["results"]:
        cid = result["customer_id"]
        [pred] = [p for p in result["predictions"] if p["model_name"] == MODEL]
        if cid in api_docs:
            assert pred["score"] == api_docs[cid]["models"][MODEL]["score"]
            assert pred["source"] == "batch"
            assert pred["stale"] is (int(cid[1:]) % 2 == 1)
        else:
            assert pred["source"] == "prior"


def test_batch_limits(api: ApiProcess, headers: dict[str, str]) -> None:
    ok = post(
        api, "/v1/predictions/batch", headers, {"customer_ids": [f"X{i}" for i in range(1000)]}
    )
    assert ok.status_code == 200
    assert len(ok.json()["results"]) == 1000
    too_many = post(
        api, "/v1/predictions/batch", headers, {"customer_ids": [f"X{i}" for i in range(1001)]}
    )
    assert too_many.status_code == 422
    empty = post(api, "/v1/predictions/batch", headers, {"customer_ids": []})
    assert empty.status_code == 422
    huge = httpx.post(
        api.url + "/v1/predictions/batch",
        headers={**headers, "content-type": "application/json"},
        content=b'{"customer_ids": ["' + b"A" * 200_000 + b'"]}',
        timeout=10,
    )
    assert huge.status_code == 413


def _local_model(
    api_registry: dict[str, Any], api: ApiProcess
) -> tuple[lgb.Booster, ColdStartSpec]:
    cached = api.log_path.parent / "model-cache" / COLDSTART_NAME / api_registry["version"]
    spec = ColdStartSpec.model_validate_json((cached / "spec.json").read_text())
    return lgb.Booster(model_file=str(cached / "model.txt")), spec


def test_coldstart_tiers(
    api: ApiProcess, headers: dict[str, str], api_registry: dict[str, Any], api_docs: Any
) -> None:
    context = {
        "country": "DE",
        "channel": "app",
        "days_since_signup": 3,
        "first_order_amount": 120.5,
    }
    known = post(api, "/v1/customers/C00010/coldstart", headers, {"context": context}).json()
    [pred] = known["predictions"]
    assert (pred["source"], pred["score"], known["known"]) == (
        "batch",
        api_docs["C00010"]["models"][MODEL]["score"],
        True,
    )

    new = post(api, "/v1/customers/NEW-3/coldstart", headers, {"context": context}).json()
    [pred] = new["predictions"]
    booster, spec = _local_model(api_registry, api)
    row = np.asarray([encode(ColdStartContext(**context), spec)])
    assert pred["source"] == "coldstart"
    assert pred["model_name"] == COLDSTART_NAME
    assert pred["model_version"] == api_registry["version"]
    assert pred["score"] == pytest.approx(float(booster.predict(row)[0]), abs=1e-12)
    assert new["known"] is False

    bare = post(api, "/v1/customers/NEW-3/coldstart", headers, {}).json()
    [pred] = bare["predictions"]
    assert (pred["source"], pred["score"]) == ("segment_prior", GLOBAL_PRIOR)
    assert pred["model_name"] == COLDSTART_NAME


def test_coldstart_rejects_bad_context(api: ApiProcess, headers: dict[str, str]) -> None:
    for context in (
        {"days_since_signup": -1},
        {"country": {"$ne": None}},
        {"channel": "a" * 33},
        {"unknown_field": 1},
    ):
        resp = post(api, "/v1/customers/NEW-4/coldstart", headers, {"context": context})
        assert resp.status_code == 422, context


def test_fast_path_and_route_give_the_same_answers(
    api: ApiProcess, headers: dict[str, str]
) -> None:
    """Plain requests take the ASGI shortcut; encoded ones the FastAPI route."""
    plain = get(api, "/v1/customers/C00042/predictions", headers).json()
    routed = get(api, "/v1/customers/%43%30%30%30%34%32/predictions", headers).json()
    assert plain == routed
    body = json.dumps({"context": {"country": "FR", "days_since_signup": 9}})
    answers = [
        httpx.post(
            api.url + "/v1/customers/NEW-5/coldstart",
            headers={**headers, "content-type": content_type},
            content=body,
        ).json()
        for content_type in ("application/json", "application/json; charset=utf-8")
    ]
    assert answers[0] == answers[1]
    assert answers[0]["predictions"][0]["source"] == "coldstart"
