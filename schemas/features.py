"""The customer feature catalogue: one place for each feature's name, type and meaning.

``gold.customer_features`` is built from this list, the model's feature order
comes from it, and ``python -m schemas.features`` prints the feature docs.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOWS_DAYS = (30, 90, 365)


@dataclass(frozen=True, kw_only=True)
class Feature:
    name: str
    dtype: str  # Spark SQL type
    description: str


def _windowed() -> list[Feature]:
    out: list[Feature] = []
    for w in WINDOWS_DAYS:
        out.append(
            Feature(
                name=f"frequency_{w}d",
                dtype="INT",
                description=f"Orders in the {w} days before the as-of date.",
            )
        )
        out.append(
            Feature(
                name=f"monetary_{w}d",
                dtype="DOUBLE",
                description=f"Order value in the {w} days before the as-of date.",
            )
        )
    return out


FEATURES: tuple[Feature, ...] = (
    Feature(
        name="recency_days",
        dtype="INT",
        description="Days from the last order to the as-of date (1 = ordered the day before).",
    ),
    Feature(
        name="tenure_days",
        dtype="INT",
        description="Days from the first order to the as-of date.",
    ),
    *_windowed(),
    Feature(name="frequency_all", dtype="INT", description="Orders before the as-of date."),
    Feature(name="monetary_all", dtype="DOUBLE", description="Order value before the as-of date."),
    Feature(
        name="avg_basket_amount",
        dtype="DOUBLE",
        description="Mean order value before the as-of date.",
    ),
    Feature(
        name="avg_basket_quantity",
        dtype="DOUBLE",
        description="Mean items per order before the as-of date.",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def feature_docs_markdown() -> str:
    lines = ["| feature | type | description |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {f.dtype} | {f.description} |" for f in FEATURES]
    return "\n".join(lines)


if __name__ == "__main__":
    print(feature_docs_markdown())
