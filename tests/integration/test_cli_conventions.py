"""The command line's conventions: results on stdout, errors on stderr with the documented
exit codes, ``--version``, ``--json`` on ``status`` and ``history``, and the backfill's
skip rule (dates the current champion already scored), against a real MLflow registry
(SQLite) and real Delta tables written by delta-rs. No Spark."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from mlflow import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from cli.runs import scored_by_champion
from jobs.platform import CHAMPION, configure_mlflow
from schemas.settings import Settings, get_settings
from schemas.tables import PREDICTIONS_HISTORY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
D1, D2, D3 = dt.date(1998, 1, 1), dt.date(1998, 1, 2), dt.date(1998, 1, 3)


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A data folder, lake, Dagster home and MLflow registry of this test's own, for the CLI
    (which reads its settings from the environment)."""
    env = {
        "LAKESCORE_DATA_DIR": str(tmp_path / "data"),
        "LAKESCORE_LAKE__ROOT": str(tmp_path / "lake"),
        "LAKESCORE_MLFLOW__TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "LAKESCORE_MLFLOW__ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "LAKESCORE_MONGO__URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MONGO_URI", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def champion(settings: Settings, *, versions: int) -> str:
    """Register ``versions`` versions of the primary model; the newest is champion."""
    client: MlflowClient = configure_mlflow(settings)
    name = settings.model.name
    client.create_registered_model(name)
    version = ""
    for n in range(versions):
        version = str(client.create_model_version(name, source=f"file:///m/{n}").version)
    client.set_registered_model_alias(name, CHAMPION, version)
    return version


def write_history(settings: Settings, rows: list[dict[str, Any]]) -> None:
    base = {
        "model_name": settings.model.name,
        "model_role": CHAMPION,
        "run_id": "r",
        "feature_table_version": 1,
    }
    table = pa.Table.from_pylist([{**base, **row} for row in rows])
    write_deltalake(
        settings.table_path(PREDICTIONS_HISTORY.name),
        table,
        partition_by=["score_date"],
        mode="append",
    )


def test_version_is_the_projects() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert result.stdout.strip() == f"lakescore {project['version']}"


def test_a_usage_error_goes_to_stderr_with_code_2() -> None:
    result = CliRunner().invoke(app, ["backfill", "--start", "1998-01-10", "--end", "1998-01-01"])
    assert result.exit_code == 2
    assert "before start" in result.stderr
    assert "before start" not in result.stdout


def test_a_configuration_that_does_not_load_is_code_2_on_stderr(
    stores: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKESCORE_MODEL__MAX_CALIBRATION_ERROR", "not a number")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2
    assert "configuration error" in result.stderr
    assert "max_calibration_error" in result.stderr
    assert result.stdout == ""


def test_history_json_and_a_missing_customer(stores: Settings) -> None:
    write_history(
        stores,
        [
            {"customer_id": "C1", "score_date": D1, "model_version": "1", "score": 0.25},
            {"customer_id": "C1", "score_date": D2, "model_version": "2", "score": 0.5},
            {"customer_id": "C2", "score_date": D2, "model_version": "2", "score": 0.75},
        ],
    )
    result = CliRunner().invoke(app, ["history", "C1", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["score_date"], r["model_version"], r["score"]) for r in rows] == [
        ("1998-01-02", "2", 0.5),
        ("1998-01-01", "1", 0.25),
    ]
    missing = CliRunner().invoke(app, ["history", "C9", "--json"])
    assert missing.exit_code == 1
    assert "no predictions for customer 'C9'" in missing.stderr
    assert missing.stdout == ""


def test_history_shows_each_scores_reasons(
    stores: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reasons = [
        {"feature": "recency_days", "contribution": -0.82, "value": 41.0},
        {"feature": "monetary_365d", "contribution": 0.3, "value": None},
    ]
    write_history(
        stores,
        [
            {
                "customer_id": "C7",
                "score_date": D2,
                "model_version": "2",
                "score": 0.5,
                "reasons": reasons,
                "reasons_policy": "all",
            }
        ],
    )
    result = CliRunner().invoke(app, ["history", "C7", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["reasons"] == reasons
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["history", "C7"])
    assert shown.exit_code == 0, shown.output
    assert "recency_days=41 (-0.820)" in shown.stdout
    assert "monetary_365d=missing (+0.300)" in shown.stdout


def test_status_json(stores: Settings) -> None:
    version = champion(stores, versions=2)
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"] == []
    assert report["models"] == [
        {"model": stores.model.name, "alias": CHAMPION, "version": version, "run": "None"}
    ]
    sync = report["sync"]
    assert sync["current_version"] is None and sync["lag_versions"] is None
    assert str(sync["synced_version"]).startswith("unreachable")


def test_backfill_skips_what_the_current_champion_scored(stores: Settings) -> None:
    assert scored_by_champion(stores, dates=[D1, D2, D3]) == []  # no champion yet
    version = champion(stores, versions=2)
    old = str(int(version) - 1)
    write_history(
        stores,
        [
            # D1: the current champion only; D2: partly an older version; D3: not scored
            {"customer_id": "C1", "score_date": D1, "model_version": version, "score": 0.1},
            {"customer_id": "C2", "score_date": D1, "model_version": version, "score": 0.2},
            {"customer_id": "C1", "score_date": D2, "model_version": version, "score": 0.1},
            {"customer_id": "C2", "score_date": D2, "model_version": old, "score": 0.2},
        ],
    )
    assert scored_by_champion(stores, dates=[D1, D2, D3]) == [D1]

    # Every date already scored: the backfill runs nothing (no Spark, no Dagster run).
    result = CliRunner().invoke(app, ["backfill", "--start", "1998-01-01", "--end", "1998-01-01"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 of 1 dates" in result.stdout
    assert "nothing to run" in result.stdout
