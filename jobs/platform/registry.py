"""MLflow tracking and registry access: one place that knows URIs, experiments and aliases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

# The aliases live with the model definitions (Spark- and MLflow-free readers need them too).
from schemas.models import CHALLENGER as CHALLENGER
from schemas.models import CHAMPION as CHAMPION
from schemas.settings import Settings

if TYPE_CHECKING:  # lightgbm takes ~1 s to import: only the loader needs it
    import lightgbm as lgb

# MLflow's HTTP client retries 7 times with exponential backoff and waits 120 s per request
# by default: minutes before a job learns that the registry is down. A nightly job should fail
# fast and let the orchestrator retry the step. Applied only where the operator set nothing.
FAIL_FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class RegistryError(RuntimeError):
    """The registry could not give what a job needs (unreachable, no alias, bad model)."""


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking/registry store and make sure the experiment exists."""
    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith(("http://", "https://")):  # a tracking server: fail fast when it is down
        for name, value in FAIL_FAST_HTTP.items():
            os.environ.setdefault(name, value)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    except MlflowException as exc:
        raise RegistryError(f"MLflow registry at {uri} is unreachable or failing: {exc}") from exc
    if experiment is None:
        artifact_root = settings.mlflow.artifact_root
        location = artifact_root if "://" in artifact_root else Path(artifact_root).as_uri()
        client.create_experiment(settings.mlflow.experiment, artifact_location=location)
    mlflow.set_experiment(settings.mlflow.experiment)
    return client


def version_by_alias(client: MlflowClient, *, model_name: str, alias: str) -> ModelVersion | None:
    """The model version an alias points at, or ``None`` when the alias (or model) does not exist."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def load_booster(*, model_name: str, version: str) -> lgb.Booster:
    """Load a registered LightGBM model as a native Booster (scoring needs no pyfunc wrapper)."""
    import lightgbm as lgb

    model = mlflow.lightgbm.load_model(f"models:/{model_name}/{version}")
    if isinstance(model, lgb.Booster):
        return model
    booster = getattr(model, "booster_", None)
    if isinstance(booster, lgb.Booster):
        return booster
    raise RegistryError(f"{model_name} v{version} is not a LightGBM model")
