"""The one settings model: YAML, then environment variables, then explicit arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("MONGO_URI", "MLFLOW_TRACKING_URI", "SPARK_MASTER", "LAKESCORE_ENV"):
        monkeypatch.delenv(var, raising=False)
    for var in list(__import__("os").environ):
        if var.startswith("LAKESCORE_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKESCORE_CONF_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_are_the_embedded_local_setup(conf_dir: Path) -> None:
    s = Settings()
    assert s.spark.master == "local[*]"
    assert s.lake.root == str(conf_dir / "data" / "lake")
    assert s.mlflow.tracking_uri == f"sqlite:///{conf_dir}/data/mlflow/mlflow.db"
    assert s.mongo.uri == ""
    assert s.mongo.effective_uri == f"mongodb://127.0.0.1:{s.mongo.local_port}/"


def test_yaml_then_env_then_arguments(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (conf_dir / "staging.yaml").write_text(
        "spark:\n  master: spark://yaml:7077\nlake:\n  root: s3a://bucket/lake\n"
        "model:\n  horizon_days: 14\n"
    )
    monkeypatch.setenv("LAKESCORE_ENV", "staging")
    s = Settings()
    assert s.spark.master == "spark://yaml:7077"
    assert s.lake.root == "s3a://bucket/lake"  # object-store paths are kept as they are
    assert s.model.horizon_days == 14

    monkeypatch.setenv("LAKESCORE_SPARK__MASTER", "spark://env:7077")
    monkeypatch.setenv("MONGO_URI", "mongodb://db.example:27017/")
    s = Settings()
    assert s.spark.master == "spark://env:7077"
    assert s.mongo.uri == "mongodb://db.example:27017/"
    assert s.mongo.effective_uri == "mongodb://db.example:27017/"
    assert s.model.horizon_days == 14

    assert Settings(env="explicit").env == "explicit"


def test_conventional_variables(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_MASTER", "sc://connect:15002")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    s = Settings()
    assert s.spark.master == "sc://connect:15002"
    assert s.mlflow.tracking_uri == "http://mlflow:5000"


def test_project_variables_win_over_conventional_ones(
    conf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI for the whole process: settings
    built after it must still follow LAKESCORE_MLFLOW__TRACKING_URI."""
    import mlflow

    monkeypatch.setenv("LAKESCORE_MLFLOW__TRACKING_URI", "http://ours:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://theirs:5000")
    monkeypatch.setenv("LAKESCORE_MONGO__URI", "mongodb://ours:27017/")
    monkeypatch.setenv("MONGO_URI", "mongodb://theirs:27017/")
    s = Settings()
    assert (s.mlflow.tracking_uri, s.mongo.uri) == ("http://ours:5000", "mongodb://ours:27017/")

    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri("sqlite:////tmp/another-registry.db")
        assert Settings().mlflow.tracking_uri == "http://ours:5000"
    finally:
        mlflow.set_tracking_uri(previous)


def test_missing_env_file_is_an_error(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKESCORE_ENV", "nope")
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        Settings()


def test_unknown_keys_and_bad_values_are_rejected(conf_dir: Path) -> None:
    (conf_dir / "local.yaml").write_text("spark:\n  mastr: local[2]\n")
    with pytest.raises(ValueError, match="mastr"):
        Settings()
    (conf_dir / "local.yaml").write_text("model:\n  horizon_days: 0\n")
    with pytest.raises(ValueError, match="horizon_days"):
        Settings()


def test_table_paths_live_under_the_lake_root(conf_dir: Path) -> None:
    s = Settings(lake={"root": "s3a://b/lake/"})
    assert s.table_path("predictions.history") == "s3a://b/lake/predictions/history"


def test_mlflow_run_url_prefers_the_ui_then_a_tracking_server() -> None:
    from schemas.settings import MlflowSettings

    local = MlflowSettings(tracking_uri="sqlite:///x.db")
    assert (
        local.run_url(experiment_id="1", run_id="r")
        == "http://127.0.0.1:5000/#/experiments/1/runs/r"
    )
    server = MlflowSettings(tracking_uri="https://mlflow.example/")
    assert (
        server.run_url(experiment_id="2", run_id="r")
        == "https://mlflow.example/#/experiments/2/runs/r"
    )
    ui = MlflowSettings(tracking_uri="https://mlflow.example", ui_url="https://ui.example")
    assert ui.run_url(experiment_id="3", run_id="r").startswith("https://ui.example/#/")
