"""The jars folder is used only when it is complete and for the installed delta-spark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.platform.spark import MANIFEST, _delta_version, installed_jars
from schemas.settings import Settings

pytestmark = pytest.mark.unit


def _folder(tmp_path: Path, *, version: str, jars: list[str], present: list[str]) -> Settings:
    for name in present:
        (tmp_path / name).write_bytes(b"PK")
    (tmp_path / MANIFEST).write_text(json.dumps({"delta_spark": version, "jars": jars}))
    return Settings(spark={"jars_dir": str(tmp_path)})


def test_a_complete_folder_for_this_delta_spark_is_used(tmp_path: Path) -> None:
    s = _folder(
        tmp_path, version=_delta_version(), jars=["a.jar", "b.jar"], present=["a.jar", "b.jar"]
    )
    assert installed_jars(s) == [tmp_path / "a.jar", tmp_path / "b.jar"]


def test_a_folder_for_another_delta_spark_is_ignored(tmp_path: Path) -> None:
    s = _folder(tmp_path, version="0.0.1", jars=["a.jar"], present=["a.jar"])
    assert installed_jars(s) == []


def test_an_incomplete_folder_is_ignored(tmp_path: Path) -> None:
    s = _folder(tmp_path, version=_delta_version(), jars=["a.jar", "b.jar"], present=["a.jar"])
    assert installed_jars(s) == []


def test_a_folder_without_manifest_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "a.jar").write_bytes(b"PK")
    assert installed_jars(Settings(spark={"jars_dir": str(tmp_path)})) == []
