"""The harness counts what it reports: one lost and one duplicated row injected into the data
each counter sees are counted as 1 lost and 1 duplicate (no servers, no Spark session).

The counters are the ones the scenarios call: ``counting.py`` (documents read back from
MongoDB, answers of the outage scenario), the load generator's answer check
(``LoadGenerator._check`` and ``Stats.rows_lost``) and the resync scenario's ``judge``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import MODEL
from tests.reliability.counting import (
    business_keys,
    duplicated,
    lost_rows,
    unanswered,
)
from tests.reliability.load import LoadGenerator, Stats
from tests.reliability.test_resync_under_load import Exchange, Seen, judge

pytestmark = [pytest.mark.unit, pytest.mark.reliability]

CUSTOMERS = [f"C{i:05d}" for i in range(6)]


def _doc(customer: Any, score: float, *, version: str = "1", **extra: Any) -> dict[str, Any]:
    entry = {"score": score, "model_version": version, "score_date": "1998-01-01"}
    return {"_id": customer, "models": {MODEL: entry}, "delta_version": 3, **extra}


def _expected() -> dict[tuple[str, str], dict[str, Any]]:
    return {(c, MODEL): {"model_version": "1", "score": i / 10} for i, c in enumerate(CUSTOMERS)}


def test_synced_documents_one_lost_one_duplicated() -> None:
    docs = [_doc(c, i / 10) for i, c in enumerate(CUSTOMERS)]
    assert lost_rows(_expected(), docs) == 0 and duplicated(business_keys(docs)) == 0

    del docs[1]  # a row of Delta that never reached MongoDB
    # The same customer written again under another _id (a generated id beside the field):
    # distinct _id values cannot see it.
    docs.append(_doc("65f0c0ffee0000000000000a", 0.3, customer_id=CUSTOMERS[3]))
    assert len({d["_id"] for d in docs}) == len(docs)  # what the _id count saw: no duplicate

    assert lost_rows(_expected(), docs) == 1
    assert duplicated(business_keys(docs)) == 1


def test_a_stale_document_is_lost_and_an_id_typed_twice_is_a_duplicate() -> None:
    docs = [_doc(c, i / 10) for i, c in enumerate(CUSTOMERS)]
    docs[2] = _doc(CUSTOMERS[2], 0.99, version="0")  # an older version left in place
    docs.append(_doc(5, 0.5))  # customer "5" written with an int id beside the string id
    docs.append(_doc("5", 0.5))
    assert lost_rows(_expected(), docs) == 1
    assert duplicated(business_keys(docs)) == 1


def test_outage_answers_one_ask_unanswered() -> None:
    asked = ["C00012", "C00012", "C00010", "C00011"]
    answers = [
        {"customer_id": c, "degraded": True, "predictions": [{"source": "prior"}]} for c in asked
    ]
    assert unanswered(asked, answers) == 0
    assert unanswered(asked, answers[1:]) == 1  # one of the two asks for C00012 went unanswered
    no_prediction = [*answers[:3], {**answers[3], "predictions": []}]
    assert unanswered(asked, no_prediction) == 1


def _answer(customer: str, score: float, *, degraded: bool = False) -> dict[str, Any]:
    known = not degraded
    source = "batch" if known else "prior"
    prediction = {"model_name": MODEL, "score": score if known else 0.07, "source": source}
    return {
        "customer_id": customer,
        "known": known,
        "degraded": degraded,
        "predictions": [prediction],
    }


def test_load_answers_one_lost_and_degraded_beyond_the_bound() -> None:
    docs = {c: _doc(c, i / 10) for i, c in enumerate(CUSTOMERS)}
    gen = LoadGenerator("http://127.0.0.1:9", headers={}, docs=docs, pid=0, seed=0)
    stats = Stats()
    for i, c in enumerate(CUSTOMERS):
        gen._check(_answer(c, i / 10), stats)
    gen._check(_answer("NEW1", 0.07), stats)  # a new id: neither known nor lost
    assert (stats.answers, stats.lost, stats.degraded, stats.rows_lost) == (7, 0, 0, 0)

    gen._check(_answer(CUSTOMERS[4], 0.123), stats)  # another score than the synced one
    assert (stats.lost, stats.rows_lost) == (1, 1)

    # Degraded answers are excused up to the bound's share of the answers, not beyond.
    many = Stats(max_degraded_share=0.01)
    for n in range(990):
        gen._check(_answer(CUSTOMERS[n % 6], (n % 6) / 10), many)
    for _ in range(10):
        gen._check(_answer(CUSTOMERS[0], 0.0, degraded=True), many)
    assert (many.answers, many.lost, many.degraded, many.rows_lost) == (1_000, 0, 10, 0)
    gen._check(_answer(CUSTOMERS[1], 0.0, degraded=True), many)  # one past the bound
    assert many.degraded_share > many.max_degraded_share
    assert (many.lost, many.rows_lost) == (0, 1)


def test_resync_answers_one_lost() -> None:
    expected = {c: {"1": i / 10} for i, c in enumerate(CUSTOMERS)}

    def seen(customer: str, *, known: bool = True, score: float | None = None) -> Seen:
        source = "batch" if known else "prior"
        value = expected[customer]["1"] if score is None else score
        return Seen(customer, customer, known, False, source, "1" if known else None, value)

    answers = [seen(c) for c in CUSTOMERS]
    assert judge([Exchange(0.0, 1.0, "batch", 200, answers=answers)], expected).lost == 0
    answers[2] = seen(CUSTOMERS[2], known=False)  # a known customer answered as unknown
    verdict = judge([Exchange(0.0, 1.0, "batch", 200, answers=answers)], expected)
    assert (verdict.lost, verdict.wrong_score, verdict.known_answers) == (1, 0, len(CUSTOMERS))
