"""Run a data contract (``schemas.contracts``) with Great Expectations.

``check_contract`` is what the pipeline runs: the contract's row-level metrics
come from one Spark aggregation (``jobs.lakehouse.contract_metrics``) and GX validates
that one-row summary (plus the column set and the row-count change against the
previous partition) on its pandas engine, optionally building Data Docs.
``validate`` runs the same expectations on GX's own Spark engine, one query per
metric; it is the reference the benchmark and tests compare against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame

from jobs.lakehouse.contract_metrics import column_set_mismatch, contract_metrics
from schemas.contracts import Contract


@dataclass(frozen=True, kw_only=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    element_count: int | None
    detail: str | None = None  # replaces the "failed on N of M rows" wording when set


@dataclass(frozen=True, kw_only=True)
class ContractResult:
    contract: str
    success: bool
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    rows: int | None = None
    docs_path: str | None = None

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        if self.success:
            return f"{self.contract}: all {len(self.outcomes)} expectations passed"
        parts = [
            o.detail
            or f"{o.expectation}({o.column}) failed on {o.unexpected_count} of {o.element_count} rows"
            for o in self.failures
        ]
        return f"{self.contract}: " + "; ".join(parts)


def _context(docs_dir: Path | None) -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name="lakescore",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def check_contract(
    df: DataFrame,
    *,
    contract: Contract,
    previous_rows: int | None = None,
    max_row_count_change: float | None = None,
    docs_dir: Path | None = None,
) -> ContractResult:
    """Validate ``df`` against ``contract`` in one Spark pass plus a GX run on the summary."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    rows, metrics = contract_metrics(df, contract=contract)
    missing, extra = column_set_mismatch(df, contract=contract)
    summary: dict[str, float] = {m.key: m.unexpected_count for m in metrics}
    described = {m.key: (m.expectation, m.column, m.element_count) for m in metrics}
    bounds = {m.key: (0.0, 0.0) for m in metrics}
    if contract.columns:
        summary["columns__missing_or_unexpected"] = len(missing) + len(extra)
        names = ",".join([*(f"-{c}" for c in missing), *(f"+{c}" for c in extra)]) or None
        described["columns__missing_or_unexpected"] = ("ExpectTableColumnsToMatchSet", names, 0)
        bounds["columns__missing_or_unexpected"] = (0.0, 0.0)
    limit = max_row_count_change or contract.max_row_count_change
    if limit is not None and previous_rows:
        summary["row_count_change"] = rows / previous_rows - 1.0
        described["row_count_change"] = ("ExpectTableRowCountChangeBetween", None, rows)
        bounds["row_count_change"] = (-limit, limit)

    context = _context(docs_dir)
    asset = context.data_sources.add_pandas(name="contracts").add_dataframe_asset(name="summary")
    batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=contract.name)
    for key, (low, high) in bounds.items():
        suite.add_expectation(
            gx.expectations.ExpectColumnMaxToBeBetween(column=key, min_value=low, max_value=high)
        )
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=contract.name, data=batch_def, suite=suite)
    )
    actions: list[Any] = [UpdateDataDocsAction(name="data_docs")] if docs_dir else []
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=contract.name, validation_definitions=[definition], actions=actions)
    )
    run = checkpoint.run(batch_parameters={"dataframe": pd.DataFrame([summary])})
    outcomes = []
    for validation in run.run_results.values():
        for r in validation.results:
            config = r.expectation_config
            if config is None:
                continue
            key = config.kwargs["column"]
            expectation, column, element_count = described[key]
            detail = None
            if key == "row_count_change":
                detail = (
                    f"{expectation}: {rows} rows vs {previous_rows} in the previous partition "
                    f"({summary[key]:+.0%}, allowed within ±{bounds[key][1]:.0%})"
                )
            outcomes.append(
                ExpectationOutcome(
                    expectation=expectation,
                    column=column,
                    success=bool(r.success),
                    unexpected_count=int(summary[key]) if detail is None else None,
                    element_count=element_count,
                    detail=detail,
                )
            )
    docs = (docs_dir / "index.html").resolve().as_uri() if docs_dir is not None else None
    return ContractResult(
        contract=contract.name,
        success=bool(run.success),
        outcomes=outcomes,
        rows=rows,
        docs_path=docs,
    )


def validate(df: DataFrame, *, contract: Contract) -> ContractResult:
    """Validate ``df`` with GX's Spark engine (one query per metric; slow, the reference)."""
    import great_expectations as gx

    context = _context(None)
    source = context.data_sources.add_spark(name="lake")
    asset = source.add_dataframe_asset(name=contract.table.replace(".", "_"))
    batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=contract.name)
    for exp in contract.expectations:
        suite.add_expectation(getattr(gx.expectations, exp.type)(**exp.kwargs))
    suite = context.suites.add(suite)
    result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    outcomes = []
    for r in result.results:
        details: dict[str, Any] = r.result or {}
        config = r.expectation_config
        if config is None:
            continue
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=config.kwargs.get("column"),
                success=bool(r.success),
                unexpected_count=details.get("unexpected_count"),
                element_count=details.get("element_count"),
            )
        )
    return ContractResult(contract=contract.name, success=bool(result.success), outcomes=outcomes)
