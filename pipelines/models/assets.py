"""The models: the batch champion and the cold-start champion, each trained and gated when the
registry has none (or when asked to retrain).

Both assets run one body (``registered_model``); what differs between them is a
:class:`ModelAsset` entry of ``MODEL_ASSETS``, looked up by the asset's key. Training
(and the gate's move of the champion alias) holds the model's ``retrain:<model>`` lease
in the serving store: a second line behind the run queue's limit on the ``retrain``
job, for the nightly job's own training and for command-line retrains.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
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
from pyspark.sql import SparkSession

from jobs.platform import (
    CHAMPION,
    configure_mlflow,
    default_holder,
    ensure_local_mongo,
    leased,
    retrain_lease,
    version_by_alias,
)
from jobs.training import HEADLINE_METRICS, TrainResult, train_coldstart, train_model
from pipelines.errors import permanent_errors, permanent_failure
from pipelines.keys import (
    CHAMPION_MODEL_KEY,
    COLDSTART_MODEL_KEY,
    CUSTOMER_FEATURES_KEY,
    SILVER_CUSTOMERS_KEY,
    SILVER_ORDERS_KEY,
)
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource
from schemas.coldstart import COLDSTART_SUFFIX
from schemas.models import ModelTask
from schemas.settings import Settings, primary_definition

# A model's training for a score date: its gate result and the metadata it adds.
Train = Callable[[SparkSession, Settings, dt.date], tuple[TrainResult, dict[str, Any]]]


class ModelConfig(Config):  # type: ignore[misc]
    retrain: bool = False


@dataclass(frozen=True, kw_only=True)
class ModelAsset:
    """One model asset: its graph node, its registered name, and how it trains."""

    key: AssetKey
    deps: tuple[AssetKey, ...]
    description: str
    registered_name: Callable[[Settings], str]
    train: Train
    gate_label: str  # the log line's prefix
    # True: the asset fails when no champion exists after training (the first model was refused).
    champion_required: bool


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


def _train_champion(
    spark: SparkSession, settings: Settings, day: dt.date
) -> tuple[TrainResult, dict[str, Any]]:
    result = train_model(spark, settings, score_date=day)
    task = primary_definition(settings).task
    return result, headline_metadata(result.metrics, result.baselines, task=task)


def _train_coldstart(
    spark: SparkSession, settings: Settings, day: dt.date
) -> tuple[TrainResult, dict[str, Any]]:
    result = train_coldstart(spark, settings, score_date=day)
    return result, {
        "holdout_roc_auc": result.metrics["roc_auc"],
        "global_prior": result.spec.global_prior,
    }


MODEL_ASSETS: dict[AssetKey, ModelAsset] = {
    m.key: m
    for m in (
        ModelAsset(
            key=CHAMPION_MODEL_KEY,
            deps=(SILVER_ORDERS_KEY, CUSTOMER_FEATURES_KEY),
            description=(
                "The registry's champion for the score date; trains and gates a new one if none."
            ),
            registered_name=lambda settings: settings.model.name,
            train=_train_champion,
            gate_label="gate",
            champion_required=True,
        ),
        ModelAsset(
            key=COLDSTART_MODEL_KEY,
            deps=(SILVER_ORDERS_KEY, SILVER_CUSTOMERS_KEY),
            description=(
                "The cold-start champion (request-time features) the API serves to new customers."
            ),
            registered_name=lambda settings: settings.model.name + COLDSTART_SUFFIX,
            train=_train_coldstart,
            gate_label="cold-start gate",
            champion_required=False,
        ),
    )
}


def registered_model(
    context: AssetExecutionContext, config: ModelConfig, lakescore: LakescoreResource
) -> MaterializeResult:
    """The registry's champion of the asset's model; trains and gates a candidate if asked to,
    or when there is none."""
    model = MODEL_ASSETS[context.asset_key]
    settings = lakescore.settings()
    name = model.registered_name(settings)
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
    ensure_local_mongo(settings)  # the lease lives in the serving store
    holder = f"{default_holder()} dagster run {context.run_id} {context.asset_key.to_user_string()}"
    # ValueError: not enough history before the score date, or features the job lacks.
    with leased(settings, name=retrain_lease(name), holder=holder), permanent_errors(ValueError):
        result, summary = model.train(
            lakescore.spark(), settings, partition_date(context.partition_key)
        )
    context.log.info(f"{model.gate_label}: {result.decision.verdict} ({result.decision.reason})")
    champion = version_by_alias(client, model_name=name, alias=CHAMPION)
    if champion is None and model.champion_required:
        raise permanent_failure(
            f"no champion: the first model was refused by the gate ({result.decision.reason})"
        )
    return MaterializeResult(
        metadata={
            "model": name,
            "version": "none" if champion is None else str(champion.version),
            "trained": True,
            "candidate_version": result.version,
            "gate": f"{result.decision.verdict}: {result.decision.reason}",
            **summary,
            "mlflow_run_id": result.run_id,
            "mlflow_run": _run_link(client, settings, result.run_id),
        }
    )


def build_model_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [
        asset(
            key=model.key,
            deps=list(model.deps),
            partitions_def=partitions,
            group_name="models",
            description=model.description,
        )(registered_model)
        for model in MODEL_ASSETS.values()
    ]


def _version_run(client: MlflowClient, settings: Settings, run_id: str | None) -> dict[str, Any]:
    """The MLflow run that produced a registered version (none for a version logged without one)."""
    if not run_id:
        return {}
    return {"mlflow_run_id": run_id, "mlflow_run": _run_link(client, settings, run_id)}


def _run_link(client: MlflowClient, settings: Settings, run_id: str) -> MetadataValue:
    experiment_id = client.get_run(run_id).info.experiment_id
    return MetadataValue.url(settings.mlflow.run_url(experiment_id=experiment_id, run_id=run_id))
