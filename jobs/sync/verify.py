"""Verification after a sync: the document count, and a sample compared field by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pymongo
from pymongo.collection import Collection

from jobs.sync.writes import SyncError

FIELDS = (
    "score",
    "model_version",
    "score_date",
    "scored_at",
    "reasons",
    "challenger_version",
    "shadow_scores",
)
# A count's own deadline, instead of the socket timeout (``mongo.socket_timeout_ms``, 5 s):
# servers that count by scanning take time in proportion to the collection. The local
# SecantusDB took 10 s for the estimate and 25 s for the exact count of 758,134 documents
# (1M synthetic customers), so every count of the first full sync at that scale timed out,
# and each abandoned count kept the server busy for the next (lease renewals timed out too).
# MongoDB answers the estimate from metadata in milliseconds.
COUNT_TIMEOUT_S = 300.0


class SyncVerificationError(SyncError):
    """The written collection does not match Delta; the watermark was not advanced."""


@dataclass(frozen=True, kw_only=True)
class Verification:
    collection: str
    expected_documents: int  # distinct customers in predictions.current at the synced version
    documents: int
    count_method: str  # "counted" (asked the server) or "tally" (last verified count +/- writes)
    sampled: int
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.documents == self.expected_documents and not self.mismatches

    def summary(self) -> str:
        head = "; ".join(self.mismatches[:5])
        return (
            f"{self.collection}: {self.documents} documents for {self.expected_documents} "
            f"customers ({self.count_method}), {len(self.mismatches)} of {self.sampled} "
            f"sampled customers differ from Delta{': ' + head if head else ''}"
        )

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise SyncVerificationError(f"verification failed: {self.summary()}")


def count(
    collection: Collection[dict[str, Any]], *, expected: int, timeout_s: float = COUNT_TIMEOUT_S
) -> int:
    """The number of documents: the fast estimate, confirmed by an exact count when it differs
    (each within ``timeout_s``)."""
    with pymongo.timeout(timeout_s):
        estimate = collection.estimated_document_count()
    if estimate == expected:
        return estimate
    with pymongo.timeout(timeout_s):
        return collection.count_documents({})


def compare_sample(
    collection: Collection[dict[str, Any]], expected: dict[str, dict[str, dict[str, Any]]]
) -> list[str]:
    """Differences between the documents of the sampled customers and Delta's rows.

    ``expected`` maps customer id to its models' fields; an empty mapping means the
    customer has no row in Delta, so no document may exist.
    """
    if not expected:
        return []
    docs = {d["_id"]: d for d in collection.find({"_id": {"$in": list(expected)}})}
    problems: list[str] = []
    for customer, models in expected.items():
        doc = docs.get(customer)
        if not models:
            if doc is not None:
                problems.append(f"{customer}: document exists but the customer is not in Delta")
            continue
        if doc is None:
            problems.append(f"{customer}: missing document")
            continue
        got = doc.get("models") or {}
        if set(got) != set(models):
            problems.append(f"{customer}: models {sorted(got)} != Delta's {sorted(models)}")
            continue
        for model, want in models.items():
            for name in FIELDS:
                value = got[model].get(name)
                if value != want[name]:
                    problems.append(
                        f"{customer}/{model}.{name}: {value!r} != Delta's {want[name]!r}"
                    )
    return problems
