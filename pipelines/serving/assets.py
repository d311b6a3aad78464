"""The serving store: predictions.current synced into MongoDB (incremental or blue/green)."""

from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from jobs.platform import ensure_local_mongo
from jobs.sync import BatchWriteError, SyncError, SyncVerificationError, sync
from pipelines.errors import permanent_errors
from pipelines.keys import CURRENT_KEY, MONGO_PREDICTIONS_KEY
from pipelines.resources import LakescoreResource


class SyncConfig(Config):  # type: ignore[misc]
    """``auto`` picks incremental or blue/green from the change feed; ``full`` forces a rebuild."""

    mode: Literal["auto", "full", "incremental"] = "auto"


def mongo_predictions(
    context: AssetExecutionContext, config: SyncConfig, lakescore: LakescoreResource
) -> MaterializeResult:
    settings = lakescore.settings()
    ensure_local_mongo(settings)
    # A refusal (no predictions.current, incremental impossible) is permanent; a batch
    # that failed after its own retries, or a failed verification, may pass next time.
    with permanent_errors(SyncError, retryable=(BatchWriteError, SyncVerificationError)):
        result = sync(
            lakescore.spark(),
            settings,
            mode=config.mode,
            # A retry of this step re-takes the lease its failed attempt could not release.
            lease_owner=f"dagster run {context.run.run_id} {MONGO_PREDICTIONS_KEY.to_user_string()}",
        )
    context.log.info(
        f"synced {settings.mongo.collection} to version {result.delta_version} "
        f"({result.mode}: {result.reason}); {result.verification.summary()}"
    )
    return MaterializeResult(metadata=result.metadata())


def build_serving_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [
        asset(
            key=MONGO_PREDICTIONS_KEY,
            deps=[CURRENT_KEY],
            partitions_def=partitions,
            group_name="serving",
            description=(
                "One document per customer in MongoDB: few changes are upserted/deleted in place, "
                "most changes are built aside, verified and pointed to in one write. A failed "
                "verification fails the asset and leaves the watermark where it was."
            ),
        )(mongo_predictions)
    ]
