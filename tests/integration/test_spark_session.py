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
