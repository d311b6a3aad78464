"""The models: the batch champion and the cold-start champion, each trained and gated when the
registry has none (or when asked to retrain)."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from mlflow import MlflowClient

from jobs.platform import CHAMPION, configure_mlflow, version_by_alias
from jobs.training import HEADLINE_METRICS, train_coldstart, train_model
from pipelines.errors import permanent_errors, permanent_failure
from pipelines.lakehouse.assets import (
    CUSTOMER_FEATURES_KEY,
    SILVER_CUSTOMERS_KEY,
    SILVER_ORDERS_KEY,
)
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource
from schemas.coldstart import COLDSTART_SUFFIX
from schemas.models import ModelTask
from schemas.settings import Settings, primary_definition

CHAMPION_MODEL_KEY = AssetKey(["models", "champion"])
COLDSTART_MODEL_KEY = AssetKey(["models", "coldstart"])


class ChampionModelConfig(Config):  # type: ignore[misc]
    retrain: bool = False


class ColdStartModelConfig(Config):  # type: ignore[misc]
    retrain: bool = False


def headline_metadata(
    metrics: dict[str, float], baselines: dict[str, dict[str, float]], *, task: ModelTask
) -> dict[str, float]:
    """The task's two headline holdout metrics, and the last baseline's first one.

    Binary: ``holdout_roc_auc``, ``holdout_lift_top_decile``, ``baseline_rf_roc_auc``
    (recency/frequency); regression: ``holdout_rmse``, ``holdout_gini``,
    ``baseline_monetary_365d_rmse``.
    """
    first, second = HEADLINE_METRICS[task]
    name, base = list(baselines.items())[-1]
    label = "rf" if name == "recency_frequency" else name
    return {
        f"holdout_{first}": metrics[first],
        f"holdout_{second}": metrics[second],
        f"baseline_{label}_{first}": base[first],
    }


def build_model_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    @asset(
        key=CHAMPION_MODEL_KEY,
        deps=[SILVER_ORDERS_KEY, CUSTOMER_FEATURES_KEY],
        partitions_def=partitions,
        group_name="models",
        description="The registry's champion for the score date; trains and gates a new one if none.",
    )
    def champion_model(
        context: AssetExecutionContext, config: ChampionModelConfig, lakescore: LakescoreResource
    ) -> MaterializeResult:
        settings = lakescore.settings()
        client = configure_mlflow(settings)
        current = version_by_alias(client, model_name=settings.model.name, alias=CHAMPION)
        if current is not None and not config.retrain:
            return MaterializeResult(
                metadata={
                    "model": settings.model.name,
                    "version": str(current.version),
                    "trained": False,
                    **_version_run(client, settings, current.run_id),
                }
            )
        # ValueError: not enough history before the score date, or features the job lacks.
        definition = primary_definition(settings)
        with permanent_errors(ValueError):
            result = train_model(
                lakescore.spark(), settings, score_date=partition_date(context.partition_key)
            )
        context.log.info(f"gate: {result.decision.verdict} ({result.decision.reason})")
        champion = version_by_alias(client, model_name=settings.model.name, alias=CHAMPION)
        if champion is None:
            raise permanent_failure(
                f"no champion: the first model was refused by the gate ({result.decision.reason})"
            )
        return MaterializeResult(
            metadata={
                "model": settings.model.name,
                "version": str(champion.version),
                "trained": True,
                "candidate_version": result.version,
                "gate": f"{result.decision.verdict}: {result.decision.reason}",
                **headline_metadata(result.metrics, result.baselines, task=definition.task),
                "mlflow_run_id": result.run_id,
                "mlflow_run": _run_link(client, settings, result.run_id),
            }
        )

    @asset(
        key=COLDSTART_MODEL_KEY,
        deps=[SILVER_ORDERS_KEY, SILVER_CUSTOMERS_KEY],
        partitions_def=partitions,
        group_name="models",
        description="The cold-start champion (request-time features) the API serves to new customers.",
    )
    def coldstart_model(
        context: AssetExecutionContext, config: ColdStartModelConfig, lakescore: LakescoreResource
    ) -> MaterializeResult:
        settings = lakescore.settings()
        name = settings.model.name + COLDSTART_SUFFIX
        client = configure_mlflow(settings)
        current = version_by_alias(client, model_name=name, alias=CHAMPION)
        if current is not None and not config.retrain:
            return MaterializeResult(
                metadata={
                    "model": name,
                    "version": str(current.version),
                    "trained": False,
                    **_version_run(client, settings, current.run_id),
                }
            )
        with permanent_errors(ValueError):  # not enough history before the score date
            result = train_coldstart(
                lakescore.spark(), settings, score_date=partition_date(context.partition_key)
            )
        context.log.info(f"cold-start gate: {result.decision.verdict} ({result.decision.reason})")
        champion = version_by_alias(client, model_name=name, alias=CHAMPION)
        return MaterializeResult(
            metadata={
                "model": name,
                "version": "none" if champion is None else str(champion.version),
                "trained": True,
                "candidate_version": result.version,
                "gate": f"{result.decision.verdict}: {result.decision.reason}",
                "holdout_roc_auc": result.metrics["roc_auc"],
                "global_prior": result.spec.global_prior,
                "mlflow_run_id": result.run_id,
                "mlflow_run": _run_link(client, settings, result.run_id),
            }
        )

    return [champion_model, coldstart_model]


def _version_run(client: MlflowClient, settings: Settings, run_id: str | None) -> dict[str, Any]:
    """The MLflow run that produced a registered version (none for a version logged without one)."""
    if not run_id:
        return {}
    return {"mlflow_run_id": run_id, "mlflow_run": _run_link(client, settings, run_id)}


def _run_link(client: MlflowClient, settings: Settings, run_id: str) -> MetadataValue:
    experiment_id = client.get_run(run_id).info.experiment_id
    return MetadataValue.url(settings.mlflow.run_url(experiment_id=experiment_id, run_id=run_id))
