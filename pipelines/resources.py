"""Typed Dagster resources: the settings every asset uses, and the Spark session built from them."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pyspark.sql import SparkSession

from jobs.platform import SparkDriverLost, live_spark
from pipelines.errors import permanent_failure
from schemas.settings import Settings, get_settings


class LakescoreResource(ConfigurableResource):  # type: ignore[misc]
    """Settings from ``conf/<env>.yaml`` and the environment, with optional per-run overrides."""

    lake_root: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None
    mongo_uri: str | None = None
    mongo_port: int | None = None
    data_dir: str | None = None

    def settings(self) -> Settings:
        base = get_settings()
        overrides: dict[str, Any] = {}
        if self.lake_root:
            overrides["lake"] = base.lake.model_copy(update={"root": self.lake_root})
        if self.mlflow_tracking_uri or self.mlflow_artifact_root:
            overrides["mlflow"] = base.mlflow.model_copy(
                update={
                    "tracking_uri": self.mlflow_tracking_uri or base.mlflow.tracking_uri,
                    "artifact_root": self.mlflow_artifact_root or base.mlflow.artifact_root,
                }
            )
        if self.mongo_uri or self.mongo_port:
            overrides["mongo"] = base.mongo.model_copy(
                update={
                    "uri": self.mongo_uri or base.mongo.uri,
                    "local_port": self.mongo_port or base.mongo.local_port,
                }
            )
        if self.data_dir:
            overrides["data_dir"] = self.data_dir
        return base.model_copy(update=overrides) if overrides else base

    def spark(self) -> SparkSession:
        """The process's Spark session; a permanent failure (no retry) when its driver
        died, which a retry in this process cannot bring back (``live_spark``)."""
        try:
            return live_spark(self.settings())
        except SparkDriverLost as exc:
            raise permanent_failure(str(exc)) from exc
