"""Run a data contract (``schemas.contracts``) against a Spark DataFrame with Great Expectations."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame

from schemas.contracts import Contract


@dataclass(frozen=True, kw_only=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    element_count: int | None


@dataclass(frozen=True, kw_only=True)
class ContractResult:
    contract: str
    success: bool
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        if self.success:
            return f"{self.contract}: all {len(self.outcomes)} expectations passed"
        parts = [
            f"{o.expectation}({o.column}) failed on {o.unexpected_count} of {o.element_count} rows"
            for o in self.failures
        ]
        return f"{self.contract}: " + "; ".join(parts)


def validate(df: DataFrame, *, contract: Contract) -> ContractResult:
    """Validate ``df`` against ``contract`` in an ephemeral GX context (nothing sent anywhere)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
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
