"""Documents built column-wise from Arrow rows: grouping by customer across slice boundaries."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from jobs.sync.changes import priors
from jobs.sync.documents import expected_models, iter_documents, sort_rows
from jobs.sync.paths import _sample_ids

pytestmark = pytest.mark.unit

AT = dt.datetime(1998, 1, 1, 2, 3, 4, 567891, tzinfo=dt.UTC)


def table(rows: list[tuple[str, str, float]]) -> pa.Table:
    return sort_rows(
        pa.table(
            {
                "customer_id": [r[0] for r in rows],
                "model_name": [r[1] for r in rows],
                "model_version": ["3"] * len(rows),
                "score": [r[2] for r in rows],
                "score_date": ["1998-01-01"] * len(rows),
                "scored_at": pa.array([AT] * len(rows), pa.timestamp("us", tz="UTC")),
            }
        )
    )


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 100])
def test_one_document_per_customer_whatever_the_slices(batch_rows: int) -> None:
    rows = [
        ("b", "m1", 0.2),
        ("a", "m2", 0.1),
        ("c", "m1", 0.3),
        ("a", "m1", 0.4),
        ("d", "m2", 0.5),
    ]
    rows += [("d", "m1", 0.6), ("e", "m1", 0.7)]
    now = dt.datetime(2026, 1, 1)

    docs = list(iter_documents(table(rows), delta_version=4, synced_at=now, batch_rows=batch_rows))

    assert [d["_id"] for d in docs] == ["a", "b", "c", "d", "e"]
    assert {name: e["score"] for name, e in docs[0]["models"].items()} == {"m1": 0.4, "m2": 0.1}
    assert set(docs[3]["models"]) == {"m1", "m2"}
    entry = docs[1]["models"]["m1"]
    assert entry == {
        "score": 0.2,
        "model_version": "3",
        "score_date": "1998-01-01",
        "scored_at": dt.datetime(1998, 1, 1, 2, 3, 4, 567000),  # BSON keeps milliseconds
    }
    assert all(d["delta_version"] == 4 and d["synced_at"] == now for d in docs)


def test_expected_models_and_priors_read_the_same_rows() -> None:
    rows = table([("a", "m1", 0.2), ("a", "m2", 0.4), ("b", "m1", 0.6)])

    expected = expected_models(rows, ["a", "zz"])

    assert set(expected["a"]) == {"m1", "m2"} and expected["zz"] == {}
    assert expected["a"]["m2"]["scored_at"] == dt.datetime(1998, 1, 1, 2, 3, 4, 567000)
    got = {p["_id"]: (round(p["prior"], 9), p["model_version"]) for p in priors(rows)}
    assert got == {"m1": (0.4, "3"), "m2": (0.4, "3")}


@pytest.mark.parametrize("customers", [30, 1500])  # the exact sample, and the drawn one
def test_the_verification_sample_is_distinct_customers_of_the_table(customers: int) -> None:
    rows = table(
        [(f"C{i:05d}", model, 0.5) for i in range(customers) for model in ("a_model", "b_model")]
    )

    sample = _sample_ids(rows, k=200, seed=7)

    assert len(sample) == len(set(sample)) == min(200, customers)
    assert set(sample) <= {f"C{i:05d}" for i in range(customers)}
    assert _sample_ids(rows, k=200, seed=7) == sample
    assert _sample_ids(rows, k=200, seed=8) != sample or customers <= 200
