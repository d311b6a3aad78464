"""The serving store: predictions.current synced into MongoDB."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from jobs.local_mongo import ensure_local_mongo
from jobs.sync import sync_full
from pipelines.resources import LakescoreResource
from pipelines.scoring.assets import CURRENT_KEY

MONGO_PREDICTIONS_KEY = AssetKey(["serving", "mongo_predictions"])


def build_serving_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    @asset(
        key=MONGO_PREDICTIONS_KEY,
        deps=[CURRENT_KEY],
        partitions_def=partitions,
        group_name="serving",
        description="One document per customer in MongoDB, swapped in atomically after verification.",
    )
    def mongo_predictions(
        context: AssetExecutionContext, lakescore: LakescoreResource
    ) -> MaterializeResult:
        settings = lakescore.settings()
        ensure_local_mongo(settings)
        result = sync_full(lakescore.spark(), settings)
        return MaterializeResult(
            metadata={
                "mode": result.mode,
                "documents": result.documents,
                "delta_version": result.delta_version,
                "verified_sample": result.verified_sample,
                "mismatches": len(result.mismatches),
            }
        )

    return [mongo_predictions]
