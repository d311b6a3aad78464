"""Landing files to bronze and silver: the generator, ingest with its rules, merge and
quarantine, the silver layout, and the data contracts with their metrics.
"""

from __future__ import annotations

from jobs.lakehouse.contracts import ContractResult, check_contract
from jobs.lakehouse.ingest import IngestAccountingError, IngestResult, ingest_configured
from jobs.lakehouse.silver_layout import needs_resort, resort_table
from jobs.lakehouse.synthetic import generate

__all__ = [
    "ContractResult",
    "IngestAccountingError",
    "IngestResult",
    "check_contract",
    "generate",
    "ingest_configured",
    "needs_resort",
    "resort_table",
]
