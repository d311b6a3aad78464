"""Helpers (no tests): how the reliability figures count rows lost, rows duplicated and
degraded answers, from the data a scenario saw (documents read back from MongoDB, answers
of the API, the rows written to Delta).

Small pure functions, so that the scenarios and the harness self-test
(``test_harness_selftest.py``) run the same counters: a figure that is 0 because the
counter cannot see a loss or a duplicate is caught there, not trusted in the table.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

Key = tuple[str, str]  # (customer_id, model_name): a row of predictions.current

# Degraded answers (the store over its time budget, or marked down after a read that was)
# are not counted as lost up to this share of a phase's answers; beyond it, the excess
# counts as lost. ``LAKESCORE_RELIABILITY_MAX_DEGRADED_SHARE`` overrides it.
MAX_DEGRADED_SHARE_ENV = "LAKESCORE_RELIABILITY_MAX_DEGRADED_SHARE"
MAX_DEGRADED_SHARE = float(os.environ.get(MAX_DEGRADED_SHARE_ENV) or 0.05)


def document_customer(doc: Mapping[str, Any]) -> str:
    """The customer a serving document is for, as text: its ``customer_id`` field when it has
    one, else the customer id the contract keeps in ``_id``. A customer written twice under
    two ids (``42`` and ``"42"``, or a generated id beside a ``customer_id`` field) is then
    the same customer twice, which counting distinct ``_id`` values cannot see."""
    return str(doc.get("customer_id", doc.get("_id")))


def business_keys(docs: Iterable[Mapping[str, Any]]) -> Counter[Key]:
    """How many documents carry each (customer_id, model_name) prediction."""
    keys: Counter[Key] = Counter()
    for doc in docs:
        customer = document_customer(doc)
        for model in doc.get("models") or {}:
            keys[(customer, str(model))] += 1
    return keys


def duplicated(keys: Counter[Key]) -> int:
    """Copies beyond the first of every business key (0: each row served once)."""
    return sum(n - 1 for n in keys.values() if n > 1)


def lost_rows(expected: Mapping[Key, Mapping[str, Any]], docs: Iterable[Mapping[str, Any]]) -> int:
    """Rows of Delta (``expected``: business key -> the fields its model entry must hold)
    that no document serves as written: missing, or with other values (a stale write)."""
    served: dict[Key, list[Mapping[str, Any]]] = {}
    for doc in docs:
        customer = document_customer(doc)
        for model, entry in (doc.get("models") or {}).items():
            served.setdefault((customer, str(model)), []).append(entry)
    return sum(
        not any(all(e.get(f) == v for f, v in fields.items()) for e in served.get(key, []))
        for key, fields in expected.items()
    )


def unanswered(asked: Iterable[str], answers: Iterable[Mapping[str, Any]]) -> int:
    """Asked customer ids without an answer for them carrying a prediction (each ask needs
    an answer of its own: an id asked twice needs two)."""
    missing = Counter(asked)
    missing.subtract(str(a.get("customer_id")) for a in answers if a.get("predictions"))
    return sum(n for n in missing.values() if n > 0)


def answer_outcome(answer: Mapping[str, Any], expected_score: float | None, *, model: str) -> str:
    """One lookup answer against the score synced for the customer (None: a new id):
    ``degraded``, ``new``, ``lost`` (a known customer answered as unknown, without the
    model's prediction or with another score) or ``ok``."""
    if answer.get("degraded"):
        return "degraded"
    if expected_score is None:
        return "new"
    batch = [p for p in answer.get("predictions") or [] if p.get("model_name") == model]
    if not answer.get("known") or not batch or batch[0].get("score") != expected_score:
        return "lost"
    return "ok"


def degraded_allowed(answers: int, max_share: float = MAX_DEGRADED_SHARE) -> int:
    """How many of ``answers`` may be degraded before the excess counts as lost."""
    return math.floor(max_share * answers)


def lost_with_degraded(
    lost: int, degraded: int, answers: int, max_share: float = MAX_DEGRADED_SHARE
) -> int:
    """Lost answers, plus the degraded ones beyond ``max_share`` of ``answers``."""
    return lost + max(0, degraded - degraded_allowed(answers, max_share))
