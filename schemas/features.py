"""The customer feature catalogue: one place for each feature's name, type and meaning.

``gold.customer_features`` is built from this list, the model's feature order
comes from it, and ``python -m schemas.features`` prints the feature docs.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOWS_DAYS = (7, 30, 90, 365)


@dataclass(frozen=True, kw_only=True)
class Feature:
    name: str
    dtype: str  # Spark SQL type
    description: str
    nullable: bool = False  # null means "not defined for this customer" (e.g. one order only)


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
    Feature(
        name="order_days_all",
        dtype="INT",
        description="Distinct days with an order before the as-of date.",
    ),
    Feature(
        name="ipi_mean_days",
        dtype="DOUBLE",
        nullable=True,
        description="Mean days between consecutive order days (null with one order day).",
    ),
    Feature(
        name="ipi_std_days",
        dtype="DOUBLE",
        nullable=True,
        description="Standard deviation of the days between consecutive order days "
        "(null with one order day).",
    ),
    Feature(
        name="overdue_ratio",
        dtype="DOUBLE",
        nullable=True,
        description="recency_days / ipi_mean_days: above 1 means later than usual "
        "(null with one order day).",
    ),
    Feature(
        name="frequency_trend_30d_365d",
        dtype="DOUBLE",
        description="Order rate of the last 30 days over that of the last 365 days, "
        "smoothed: (f30 + 1) / (f365 * 30 / 365 + 1).",
    ),
    Feature(
        name="monetary_trend_90d_365d",
        dtype="DOUBLE",
        description="Spend rate of the last 90 days over that of the last 365 days, "
        "smoothed: (m90 + 1) / (m365 * 90 / 365 + 1).",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

# Profile attributes from silver.customers (landing data only; null on CDNOW, which has
# orders only). Written to gold as extra columns; models opt in to them by name.
PROFILE_FEATURES: tuple[Feature, ...] = (
    Feature(name="country", dtype="STRING", nullable=True, description="Customer country."),
    Feature(name="channel", dtype="STRING", nullable=True, description="Acquisition channel."),
    Feature(name="device", dtype="STRING", nullable=True, description="Signup device."),
    Feature(
        name="signup_tenure_days",
        dtype="INT",
        nullable=True,
        description="Days from signup to the as-of date.",
    ),
)

PROFILE_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in PROFILE_FEATURES)
ALL_FEATURES: tuple[Feature, ...] = (*FEATURES, *PROFILE_FEATURES)


def feature_docs_markdown() -> str:
    lines = ["| feature | type | nullable | kind | description |", "|---|---|---|---|---|"]
    for f in ALL_FEATURES:
        kind = "profile" if f in PROFILE_FEATURES else "behaviour"
        null = "yes" if f.nullable else "no"
        lines.append(f"| `{f.name}` | {f.dtype} | {null} | {kind} | {f.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(feature_docs_markdown())
