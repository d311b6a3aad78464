"""``lakescore status`` reads the embedded stores' SQLite files directly: the same answers as
the Dagster instance and the MLflow client (real runs, a real registry), the library path
for any other store, and the sync watermark with an embedded server that is down told at once.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DailyPartitionsDefinition, asset, define_asset_job
from dagster import Definitions as DagsterDefinitions
from pymongo import MongoClient

from cli import status
from jobs.platform.registry import CHALLENGER, CHAMPION, configure_mlflow
from jobs.sync import synced_version
from schemas.coldstart import COLDSTART_SUFFIX
from schemas.serving import SYNC_STATE_COLLECTION
from schemas.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(settings: Settings, tmp_path: Path) -> Settings:
    """A registry of its own: the primary model (champion v2, challenger v3) and the
    cold-start model (champion v1), each version made by a run of its own."""
    name = "status_" + uuid.uuid4().hex[:8]
    own = settings.model_copy(
        update={
            "model": settings.model.model_copy(update={"name": name, "additional": []}),
            "mlflow": settings.mlflow.model_copy(
                update={
                    "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
                    "artifact_root": str(tmp_path / "artifacts"),
                    "experiment": "status",
                }
            ),
        }
    )
    client = configure_mlflow(own)
    experiment = client.get_experiment_by_name("status")
    assert experiment is not None
    for model, versions, aliases in (
        (name, 3, {CHAMPION: "2", CHALLENGER: "3"}),
        (name + COLDSTART_SUFFIX, 1, {CHAMPION: "1"}),
    ):
        client.create_registered_model(model)
        for _ in range(versions):
            run = client.create_run(experiment.experiment_id)
            client.create_model_version(model, source="file:///m", run_id=run.info.run_id)
        for alias, version in aliases.items():
            client.set_registered_model_alias(model, alias, version)
    return own


def test_the_registry_read_from_sqlite_is_what_the_client_says(registry: Settings) -> None:
    client = configure_mlflow(registry)
    name = registry.model.name
    expected = [
        (m, a, v, client.get_model_version(m, v).run_id[:8])
        for m, a, v in (
            (name, CHAMPION, "2"),
            (name, CHALLENGER, "3"),
            (name + COLDSTART_SUFFIX, CHAMPION, "1"),
        )
    ]
    direct = status.registry_aliases(registry)  # sqlite:/// URI: the direct path
    assert [(m["model"], m["alias"], m["version"], m["run"]) for m in direct] == expected
    assert direct == status._aliases_from_client(registry)


def test_a_registry_not_yet_created_has_no_models(settings: Settings, tmp_path: Path) -> None:
    missing = settings.model_copy(
        update={
            "mlflow": settings.mlflow.model_copy(
                update={"tracking_uri": f"sqlite:///{tmp_path}/none.db"}
            )
        }
    )
    assert status.registry_aliases(missing) == []
    assert not (tmp_path / "none.db").exists()  # read-only: nothing created


@asset(partitions_def=DailyPartitionsDefinition(start_date="1998-01-01"))
def status_probe() -> int:
    return 1


@asset
def status_other() -> int:
    return 2


def test_the_runs_read_from_sqlite_are_what_the_instance_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    defs = DagsterDefinitions(
        assets=[status_probe, status_other],
        jobs=[
            define_asset_job("probe", selection=[status_probe]),
            define_asset_job("other", selection=[status_other]),
        ],
    )
    ran = []
    with DagsterInstance.get() as instance:
        for job, partition in (("probe", "1998-01-02"), ("other", None), ("probe", "1998-01-03")):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, partition_key=partition
            )
            assert result.success
            ran.append((result.run_id[:8], job, partition, "SUCCESS"))
            time.sleep(0.01)

    direct = status.last_runs(settings)  # the default run storage: the direct path
    assert [(r["run"], r["job"], r["partition"], r["status"]) for r in direct] == ran[::-1]
    assert all(isinstance(r["started"], str) and r["started"].endswith(" UTC") for r in direct)
    assert direct == status._runs_from_instance(settings, limit=8)
    assert status.last_runs(settings, limit=1) == direct[:1]


def test_another_run_storage_goes_through_the_instance(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url: x\n")
    assert status._default_run_storage(tmp_path) is None
    (tmp_path / "dagster.yaml").write_text("concurrency: {}\n")
    assert status._default_run_storage(tmp_path) == tmp_path / "history" / "runs.db"
    assert status._runs_from_sqlite(tmp_path / "history" / "runs.db", limit=8) == []


def test_the_watermark_is_the_one_the_sync_reads(settings: Settings, mongo_uri: str) -> None:
    own = settings.model_copy(
        update={"mongo": settings.mongo.model_copy(update={"database": "t_" + uuid.uuid4().hex})}
    )
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        assert status.synced_version(own) is None and synced_version(own) is None
        client[own.mongo.database][SYNC_STATE_COLLECTION].insert_one(
            {"_id": own.mongo.collection, "delta_version": 7, "synced_at": dt.datetime.now()}
        )
        assert status.synced_version(own) == synced_version(own) == 7
    finally:
        client.drop_database(own.mongo.database)
        client.close()


def test_an_embedded_server_that_is_down_is_told_at_once(settings: Settings) -> None:
    port = free_port()
    down = settings.model_copy(
        update={"mongo": settings.mongo.model_copy(update={"uri": None, "local_port": port})}
    )
    _, synced, lag = status.sync_lag(down)
    assert synced == (
        f"unreachable (the embedded server is not running on port {port}; "
        "lakescore mongo starts it)"
    )
    assert lag is None
