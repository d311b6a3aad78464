"""The test session's Spark resolves no packages: its Delta jars come from the jars folder
the setup step filled (``python -m jobs.platform.spark``)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.platform.spark import installed_jars
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def test_the_session_takes_its_jars_from_the_folder_and_resolves_nothing(
    spark: Any, settings: Settings
) -> None:
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.jars.packages", None) is None
    jars = conf.get("spark.jars", "").split(",")
    folder = {str(j) for j in installed_jars(settings)}
    assert folder and set(jars) == folder
    assert any("delta-spark" in j for j in jars)
    assert spark.range(2).count() == 2


# In a process of its own (the test session's driver must live on): a session, its JVM
# killed as the kernel's OOM killer would, then what the next step of the night asks for.
_DRIVER_KILLED = """
import os, signal, time
from dagster import Failure
from pipelines.resources import LakescoreResource
resource = LakescoreResource()
spark = resource.spark()
assert spark.range(3).count() == 3
pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
os.kill(pid, signal.SIGKILL)
for _ in range(100):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(0.1)
try:
    resource.spark()
except Failure as failure:
    print("FAILURE allow_retries=%s" % failure.allow_retries)
    print(failure.description)
else:
    print("NO FAILURE")
"""


def test_a_step_after_the_driver_died_fails_for_good_naming_the_memory_setting(
    test_env: dict[str, str],
) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _DRIVER_KILLED],
        env={**os.environ, **test_env, "LAKESCORE_SPARK__DRIVER_MEMORY": "1g"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert "FAILURE allow_retries=False" in out, (out, done.stderr[-3000:])
    assert "the Spark driver of this process is gone" in out
    assert "spark.driver_memory is 1g" in out and "LAKESCORE_SPARK__DRIVER_MEMORY" in out
