"""Unit tests of the API's pieces: tiers, cold-start scoring, keys, buckets, id checks, labels."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from fastapi import HTTPException

from api.coldstart import ColdStartModel, load_from_dir
from api.guard import route_label
from api.lookup_service import answer, coldstart_answer
from api.prediction_store import _plain_id
from api.security import KeyGuard, TokenBucket, key_digest
from schemas.coldstart import ColdStartContext, ColdStartSpec, encode
from schemas.settings import ApiSettings, Settings
from tests.api.helpers import GLOBAL_PRIOR, LEVELS, MODEL, SEGMENT_PRIORS, doc, train_booster

pytestmark = pytest.mark.unit
TODAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ColdStartModel:
    directory: Path = tmp_path_factory.mktemp("model")
    train_booster(seed=3).save_model(str(directory / "model.txt"))
    spec = ColdStartSpec(
        model_name="m_coldstart",
        categorical_levels=LEVELS,
        segment_field="channel",
        segment_priors=SEGMENT_PRIORS,
        global_prior=GLOBAL_PRIOR,
    )
    (directory / "spec.json").write_text(spec.model_dump_json())
    return load_from_dir(directory, name="m_coldstart", version="7", run_id="r")


def test_coldstart_model_scores_like_lightgbm_on_the_encoded_row(model: ColdStartModel) -> None:
    context = ColdStartContext(country="FR", device="ios", first_order_amount=50.0)
    expected = model.booster.predict(np.asarray([encode(context, model.spec)]))[0]
    assert model.score(context) == pytest.approx(float(expected), abs=1e-15)
    assert model.answer(context) == (pytest.approx(float(expected)), "coldstart")
    unknown_level = ColdStartContext(country="XX")
    assert math.isnan(encode(unknown_level, model.spec)[0])
    assert 0.0 <= model.score(unknown_level) <= 1.0


def test_empty_context_gets_the_segment_prior(model: ColdStartModel) -> None:
    assert model.answer(ColdStartContext()) == (GLOBAL_PRIOR, "segment_prior")


def test_coldstart_tiers_in_order(model: ColdStartModel) -> None:
    settings = Settings()
    document = doc("C1", score=0.4, score_date=TODAY - dt.timedelta(days=5))
    context = ColdStartContext(channel="app")
    kw = {"context": context, "priors": {}, "settings": settings, "degraded": False, "today": TODAY}
    batch = coldstart_answer(customer_id="C1", document=document, coldstart=model, **kw)  # type: ignore[arg-type]
    assert (batch.predictions[0].source, batch.predictions[0].score, batch.known) == (
        "batch",
        0.4,
        True,
    )
    assert batch.predictions[0].stale is True  # 5 days > stale_after_days=2
    cold = coldstart_answer(customer_id="C2", document=None, coldstart=model, **kw)  # type: ignore[arg-type]
    assert cold.predictions[0].source == "coldstart"
    assert cold.predictions[0].model_version == "7"
    none = coldstart_answer(customer_id="C2", document=None, coldstart=None, **kw)  # type: ignore[arg-type]
    assert (none.predictions[0].source, none.predictions[0].score) == ("default", 0.1)


def test_answer_flags_staleness_by_age() -> None:
    settings = Settings()
    for days, stale in ((0, False), (2, False), (3, True)):
        document = doc("C1", score=0.2, score_date=TODAY - dt.timedelta(days=days))
        result = answer(
            customer_id="C1", document=document, priors={}, settings=settings,
            model=MODEL, degraded=False, today=TODAY,
        )  # fmt: skip
        assert result.predictions[0].stale is stale


def test_plain_ids_only() -> None:
    assert _plain_id("C00042") == "C00042"
    for bad in ({"$ne": None}, ["C1"], 42, None, "C1\n", "$where", "", "a" * 65, "C1\x00"):
        with pytest.raises(ValueError):
            _plain_id(bad)


def test_key_guard_accepts_only_known_digests_and_limits_per_key() -> None:
    cfg = ApiSettings(
        api_key_sha256=[key_digest("good"), key_digest("slow")],
        rate_limit_per_key={key_digest("slow"): 0.001},
        rate_limit_burst=2,
    )
    guard = KeyGuard(cfg)
    for bad in (None, "", "bad", "good "):
        with pytest.raises(HTTPException) as err:
            guard.check(bad)
        assert err.value.status_code == 401
    assert [guard.check("good") for _ in range(50)] == [key_digest("good")] * 50
    guard.check("slow")
    guard.check("slow")
    with pytest.raises(HTTPException) as err:
        guard.check("slow")
    assert err.value.status_code == 429
    assert err.value.headers is not None and int(err.value.headers["Retry-After"]) >= 1
    assert KeyGuard(ApiSettings()).check(None) is None  # no keys configured: auth off


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(rate=1000.0, burst=1)
    assert bucket.take() == 0.0
    wait = bucket.take()
    assert 0.0 < wait <= 0.001 + 1e-9
    bucket.stamp -= 0.01  # as if 10 ms passed
    assert bucket.take() == 0.0


def test_route_labels_never_carry_path_pieces() -> None:
    assert route_label("/v1/customers/C1/predictions") == "single"
    assert route_label("/v1/customers/C1/coldstart") == "coldstart"
    assert route_label("/v1/predictions/batch") == "batch"
    assert route_label("/v1/anything-an-attacker-sends") == "other"


def test_known_ids_filter_has_no_false_negatives() -> None:
    from api.reads.known_ids import KnownIds

    ids = [f"C{i:06d}" for i in range(5000)]
    known = KnownIds(ids, count=len(ids))
    assert all(known.might_contain(c) for c in ids)
    false_positives = sum(known.might_contain(f"NEW-{i}") for i in range(20_000))
    assert false_positives < 10  # about 0.01% at 20 bits and 10 probes per id (2 expected)
    assert not KnownIds([], count=0).might_contain("C000001")


@pytest.mark.parametrize(
    ("path", "raw", "query", "expected"),
    [
        ("/v1/customers/C1/predictions", b"/v1/customers/C1/predictions", b"", ("C1", None)),
        (
            "/v1/customers/C1/predictions",
            b"/v1/customers/C1/predictions",
            b"model=m_1",
            ("C1", "m_1"),
        ),
        ("/v1/customers/C1/predictions", b"/v1/customers/C1/predictions", b"model=m&x=1", None),
        ("/v1/customers/C1/predictions", b"/v1/customers/C1/predictions", b"id[$ne]=", None),
        ("/v1/customers/C1/predictions", b"/v1/customers/C1/predictions", b"model=%24ne", None),
        ("/v1/customers/C1/predictions", b"/v1/customers/C1/predictions", b"model=$ne", None),
        ("/v1/customers/C 1/predictions", b"/v1/customers/C%201/predictions", b"", None),
        ("/v1/customers/a/b/predictions", b"/v1/customers/a/b/predictions", b"", None),
        ("/v1/customers/$where/predictions", b"/v1/customers/$where/predictions", b"", None),
        ("/v1/customers/" + "A" * 65 + "/predictions", b"", b"", None),
    ],
)
def test_fast_path_takes_only_plainly_valid_lookups(
    path: str, raw: bytes, query: bytes, expected: tuple[str, str | None] | None
) -> None:
    from api.asgi_shortcut import plain_single_lookup

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": raw, "query_string": query}
    assert plain_single_lookup(scope) == expected
    assert plain_single_lookup({**scope, "method": "POST"}) is None


def test_planned_encoder_and_single_row_scorer_match_the_originals(model: ColdStartModel) -> None:
    """The serving shortcuts give exactly what ``encode`` and ``Booster.predict`` give."""
    import itertools

    from api.coldstart_scorer import SingleRowScorer

    assert isinstance(model._scorer, SingleRowScorer)
    values: dict[str, list[object]] = {
        "country": ["US", "XX", None],
        "channel": ["web", "email", None],
        "device": ["desktop", None],
        "days_since_signup": [0, 17, None],
        "first_order_amount": [0.0, 49.99, None],
        "first_order_items": [3, None],
    }
    for combo in itertools.product(*values.values()):
        context = ColdStartContext(**dict(zip(values, combo, strict=True)))
        expected_row = encode(context, model.spec)
        row = model.encode(context)
        assert [(math.isnan(a), a if a == a else 0) for a in row] == [
            (math.isnan(b), b if b == b else 0) for b in expected_row
        ]
        if any(v is not None for v in combo):
            expected = float(np.clip(model.booster.predict(np.asarray([expected_row]))[0], 0, 1))
            assert model.answer(context) == (expected, "coldstart")  # bit for bit
        else:
            assert model.answer(context) == (GLOBAL_PRIOR, "segment_prior")


def test_metrics_count_every_source_and_time_the_request_once() -> None:
    from api.metrics import Metrics

    metrics = Metrics()
    label = metrics.observe(
        route="batch", sources=["batch", "prior", "batch"], seconds=0.002, degraded=True
    )
    assert label == "mixed"
    assert metrics.observe(route="single", sources=["batch"], seconds=0.001, degraded=False) == (
        "batch"
    )
    value = metrics.registry.get_sample_value
    assert value("lakescore_api_answers_total", {"route": "batch", "source": "batch"}) == 2
    assert value("lakescore_api_answers_total", {"route": "batch", "source": "prior"}) == 1
    assert value("lakescore_api_degraded_total", {"route": "batch"}) == 1
    assert value("lakescore_api_request_seconds_count", {"route": "batch", "source": "mixed"}) == 1


def test_request_log_writes_buffered_lines_off_the_loop(tmp_path: Path) -> None:
    import json

    from api.requestlog import RequestLog

    path = tmp_path / "requests.log"
    log = RequestLog(sample_rate=1.0, path=str(path), flush_s=0.01)
    log.start()
    for i in range(3):
        log.record(request_id=f"r{i}", route="single", latency_s=0.0012, degraded=False, answers=[])
    log.stop()  # drains what is left
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["request_id"] for x in lines] == ["r0", "r1", "r2"]
    assert lines[0] == {
        "request_id": "r0", "route": "single", "latency_ms": 1.2, "degraded": False, "answers": [],
    }  # fmt: skip
