"""API fixtures: a real uvicorn process on the real Mongo-wire server and a real MLflow registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import (
    ApiProcess,
    api_env,
    register_coldstart,
    seed_mongo,
    sha,
    start_api,
)

DATABASE = "api_tests"
MAIN_KEY = "main-key-0123456789abcdef"
LIMITED_KEY = "limited-key-fedcba9876543210"


@pytest.fixture(scope="session")
def api_workdir(workdir: Path) -> Path:
    path = workdir / "api"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def api_registry(api_workdir: Path, test_env: dict[str, str]) -> dict[str, Any]:
    """The API tests' own MLflow registry (SQLite), with cold-start v1 as champion."""
    registry = api_workdir / "mlflow"
    registry.mkdir(exist_ok=True)
    uri = f"sqlite:///{registry}/mlflow.db"
    version = register_coldstart(
        tracking_uri=uri, artifact_root=registry / "artifacts", seed=1, workdir=api_workdir
    )
    return {"tracking_uri": uri, "artifact_root": registry / "artifacts", "version": version}


@pytest.fixture(scope="session")
def api_docs(mongo_uri: str) -> dict[str, dict[str, Any]]:
    return seed_mongo(mongo_uri, database=DATABASE)


@pytest.fixture(scope="session")
def api(
    api_workdir: Path, mongo_uri: str, api_registry: dict[str, Any], api_docs: Any
) -> Iterator[ApiProcess]:
    env = api_env(
        workdir=api_workdir,
        mongo_uri=mongo_uri,
        database=DATABASE,
        tracking_uri=api_registry["tracking_uri"],
        keys=[MAIN_KEY, LIMITED_KEY],
        rate_limit_per_key={sha(LIMITED_KEY): 0.5},
        rate_limit_burst="3",
        request_log_sample_rate="1.0",
        request_log_path=str(api_workdir / "requests.log"),
        max_batch_ids="1000",
    )
    process = start_api(env, log_path=api_workdir / "uvicorn.log", ready_path="/readyz")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def headers() -> dict[str, str]:
    return {"X-API-Key": MAIN_KEY}
