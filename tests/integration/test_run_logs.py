"""A Spark session started during a command-line run logs into the run's log file, not the
terminal: its JVM and the Python workers the JVM starts write through the descriptors they
inherited. Its driver runs with the project's log4j2 configuration: warnings that say nothing
to a user are turned off there (a loopback host name, native-hadoop), the others stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
from rich.console import Console
from cli.output import RunOutput
from jobs.platform.spark import get_spark
from schemas.settings import get_settings

settings = get_settings()
with RunOutput(settings, console=Console()) as out, out.run("run-spark", title="a run"):
    spark = get_spark(settings)
    logs = spark._jvm.org.apache.logging.log4j.LogManager
    logs.getLogger("org.apache.spark.util.Utils").warn(
        "Your hostname, vm, resolves to a loopback address: 127.0.0.1; using 192.0.2.2 instead"
    )
    logs.getLogger("org.apache.hadoop.util.NativeCodeLoader").warn(
        "Unable to load native-hadoop library for your platform"
    )
    logs.getLogger("org.apache.spark.util.Utils").warn("a warning the JVM keeps")
    spark.sparkContext.parallelize([1], 1).map(
        lambda x: print("a line from a Python worker", flush=True) or x
    ).collect()
    print("a line from the driver")
print("after the run")
"""


def test_a_spark_session_logs_into_the_run_log_with_the_noise_turned_off(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **test_env, "LAKESCORE_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["a run · Dagster run run-spark", "after the run"], (
        out.stdout + out.stderr
    )
    assert out.stderr == ""
    log = (tmp_path / "logs" / "run-spark.log").read_text()
    for line in (
        "WARN Utils: a warning the JVM keeps",
        "a line from a Python worker",
        "a line from the driver",
    ):
        assert line in log, log
    assert "loopback" not in log and "native-hadoop" not in log, log
    assert "log4j2-defaults.properties" not in log  # Spark's own profile is not used
