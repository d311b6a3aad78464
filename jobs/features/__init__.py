"""The feature build: one ``gold.customer_features`` partition per as-of date, with the
order-gap aggregates.
"""

from __future__ import annotations

from jobs.features.build import (
    build_customer_features,
    compute_customer_features,
    previous_partition_rows,
)

__all__ = ["build_customer_features", "compute_customer_features", "previous_partition_rows"]
