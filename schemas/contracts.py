"""Data contracts as plain data: which expectations each table must meet.

Each entry is a Great Expectations 1.x expectation class name and its keyword
arguments; ``jobs.contracts`` turns them into suites and runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.features import FEATURE_NAMES


@dataclass(frozen=True, kw_only=True)
class Expectation:
    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Contract:
    name: str
    table: str
    expectations: tuple[Expectation, ...]


GOLD_CUSTOMER_FEATURES = Contract(
    name="gold_customer_features",
    table="gold.customer_features",
    expectations=(
        Expectation(type="ExpectColumnValuesToNotBeNull", kwargs={"column": "customer_id"}),
        Expectation(type="ExpectColumnValuesToBeUnique", kwargs={"column": "customer_id"}),
        Expectation(
            type="ExpectColumnValuesToBeBetween",
            kwargs={"column": "recency_days", "min_value": 1},
        ),
        Expectation(
            type="ExpectColumnValuesToBeBetween",
            kwargs={"column": "frequency_all", "min_value": 1},
        ),
        Expectation(
            type="ExpectColumnValuesToBeBetween",
            kwargs={"column": "monetary_all", "min_value": 0},
        ),
        *(
            Expectation(type="ExpectColumnValuesToNotBeNull", kwargs={"column": name})
            for name in FEATURE_NAMES
            if name.startswith(("frequency", "monetary", "recency", "tenure"))
        ),
    ),
)
