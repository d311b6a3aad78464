"""The scoring job, unchanged, on a Spark standalone cluster (a master and two workers started
from pyspark's own ``bin/spark-class``); the Delta jars reach the executors through
``spark.jars.packages`` (resolved from the Ivy cache)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.platform.lake import read_table
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT, PREDICTIONS_HISTORY
from tests.conftest import free_port
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = dt.date(2024, 9, 1)
REPO = Path(__file__).resolve().parents[2]


def _spark_class() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


def _wait_port(port: int, *, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("cluster")
    port, ui = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    env = {**os.environ, "SPARK_LOG_DIR": str(logs), "PYSPARK_PYTHON": sys.executable}
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        log = (logs / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen([_spark_class(), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        )

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
              "--port", str(port), "--webui-port", str(ui))  # fmt: skip
        _wait_port(port)
        for i in range(2):
            start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--cores", "1",
                  "--memory", "2g", "--webui-port", str(free_port()), master_url)  # fmt: skip
        time.sleep(5)
        yield master_url
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_score_job_runs_unchanged_on_a_standalone_cluster(
    spark: Any, settings: Settings, cluster: str, tmp_path: Path
) -> None:
    s = isolated(settings, tmp_path)
    register_tiny_model(s, trees=10)
    write_feature_partition(spark, s, as_of=DAY, customers=5_000, seed=1)
    env = {
        **os.environ,
        "SPARK_MASTER": cluster,
        "LAKESCORE_SPARK__MASTER": cluster,
        "LAKESCORE_SPARK__DRIVER_MEMORY": "1g",
        "LAKESCORE_LAKE__ROOT": s.lake.root,
        "LAKESCORE_MLFLOW__TRACKING_URI": s.mlflow.tracking_uri,
        "LAKESCORE_MLFLOW__ARTIFACT_ROOT": s.mlflow.artifact_root,
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.ops.score",
            "--date",
            DAY.isoformat(),
            "--run-id",
            "on-cluster",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    history = read_table(spark, s, PREDICTIONS_HISTORY).collect()
    assert len(history) == 5_000
    assert {r.run_id for r in history} == {"on-cluster"}
    assert read_table(spark, s, PREDICTIONS_CURRENT).count() == 5_000
    assert f"master={cluster}" in out.stdout
    assert "feature_reader='pyarrow'" in out.stdout  # the executors read the row groups
