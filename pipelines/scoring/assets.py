"""Nightly scoring into predictions.history and predictions.current."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DailyPartitionsDefinition,
    MaterializeResult,
    multi_asset,
)

from jobs.score import score_date
from pipelines.lakehouse.assets import CUSTOMER_FEATURES_KEY
from pipelines.models.assets import CHAMPION_MODEL_KEY
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource

HISTORY_KEY = AssetKey(["predictions", "history"])
CURRENT_KEY = AssetKey(["predictions", "current"])


def build_scoring_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    @multi_asset(
        specs=[
            AssetSpec(
                HISTORY_KEY,
                deps=[CUSTOMER_FEATURES_KEY, CHAMPION_MODEL_KEY],
                description="Append-only prediction history, partitioned by score date.",
            ),
            AssetSpec(
                CURRENT_KEY,
                deps=[HISTORY_KEY],
                description="Latest score per customer and model (change data feed on).",
            ),
        ],
        partitions_def=partitions,
        group_name="scoring",
    )
    def predictions(context: AssetExecutionContext, lakescore: LakescoreResource):  # type: ignore[no-untyped-def]
        settings = lakescore.settings()
        result = score_date(
            lakescore.spark(),
            settings,
            score_date=partition_date(context.partition_key),
            run_id=context.run_id,
        )
        common: dict[str, Any] = {
            "model": result.model_name,
            "model_version": result.model_version,
            "rows": result.rows,
        }
        yield MaterializeResult(
            asset_key=HISTORY_KEY,
            metadata={
                **common,
                "delta_version": result.history_version,
                "challenger_version": result.challenger_version or "none",
                "feature_table_version": result.feature_table_version,
            },
        )
        yield MaterializeResult(
            asset_key=CURRENT_KEY, metadata={**common, "delta_version": result.current_version}
        )

    return [predictions]
