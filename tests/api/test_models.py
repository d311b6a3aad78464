"""The cold-start model's life: alias moves picked up live, registry down served from disk cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from schemas.coldstart import ColdStartContext, ColdStartSpec, encode
from tests.api.conftest import DATABASE, MAIN_KEY
from tests.api.helpers import (
    COLDSTART_NAME,
    ApiProcess,
    api_env,
    register_coldstart,
    start_api,
    train_booster,
    wait_until,
)
from tests.conftest import free_port

# All three in reliability runs too: the registry-down test needs the cache the first one fills.
pytestmark = [pytest.mark.e2e, pytest.mark.reliability]
HEADERS = {"X-API-Key": MAIN_KEY}
CONTEXT = {"country": "US", "channel": "email", "days_since_signup": 40, "first_order_items": 2}


def _coldstart(api: ApiProcess) -> dict[str, Any]:
    resp = httpx.post(
        f"{api.url}/v1/customers/NEW-77/coldstart", headers=HEADERS, json={"context": CONTEXT}
    )
    assert resp.status_code == 200
    [pred] = resp.json()["predictions"]
    return dict(pred)


def _expected(seed: int, spec_dir: Path) -> float:
    spec = ColdStartSpec.model_validate_json((spec_dir / "spec.json").read_text())
    row = np.asarray([encode(ColdStartContext(**CONTEXT), spec)])
    booster = train_booster(seed=seed)  # the same deterministic training as the registered one
    return float(booster.predict(row)[0])


@pytest.fixture(scope="module")
def lifecycle(api_workdir: Path, mongo_uri: str, api_docs: Any) -> dict[str, Any]:
    root = api_workdir / "lifecycle"
    registry = root / "mlflow"
    registry.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{registry}/mlflow.db"
    register_coldstart(tracking_uri=uri, artifact_root=registry / "artifacts", seed=1, workdir=root)
    return {"root": root, "uri": uri, "registry": registry, "mongo_uri": mongo_uri}


def _env(lifecycle: dict[str, Any], tracking_uri: str, cache: str) -> dict[str, str]:
    env = api_env(
        workdir=lifecycle["root"],
        mongo_uri=lifecycle["mongo_uri"],
        database=DATABASE,
        tracking_uri=tracking_uri,
        keys=[MAIN_KEY],
    )
    env["LAKESCORE_API__MODEL_CACHE_DIR"] = str(lifecycle["root"] / cache)
    return env


def test_alias_change_is_picked_up_without_restart(lifecycle: dict[str, Any]) -> None:
    root = lifecycle["root"]
    api = start_api(
        _env(lifecycle, lifecycle["uri"], "cache"), log_path=root / "a.log", ready_path="/readyz"
    )
    try:
        first = _coldstart(api)
        assert (first["model_version"], first["source"]) == ("1", "coldstart")
        assert first["score"] == pytest.approx(_expected(1, root / "coldstart-1"), abs=1e-12)

        version = register_coldstart(
            tracking_uri=lifecycle["uri"],
            artifact_root=lifecycle["registry"] / "artifacts",
            seed=2,
            workdir=root,
        )
        assert version == "2"
        second = wait_until(lambda: (p := _coldstart(api))["model_version"] == "2" and p)
        assert second["score"] == pytest.approx(_expected(2, root / "coldstart-2"), abs=1e-12)
        assert second["score"] != first["score"]
        ready = httpx.get(f"{api.url}/readyz").json()
        assert ready["coldstart_model"] == f"{COLDSTART_NAME}/2"
    finally:
        api.stop()


def test_registry_down_serves_the_cached_model(
    lifecycle: dict[str, Any], reliability_report: Any
) -> None:
    """Runs after the alias test: the disk cache holds v2; the registry is unreachable."""
    down = f"http://127.0.0.1:{free_port()}"
    api = start_api(
        _env(lifecycle, down, "cache"), log_path=lifecycle["root"] / "b.log", ready_path="/readyz"
    )
    try:
        ready = httpx.get(f"{api.url}/readyz").json()
        assert ready["status"] == "ready"
        assert ready["registry"] == "unreachable"
        pred = _coldstart(api)
        reliability_report.record(
            scenario="6 registry unreachable: API",
            load="fresh start, registry down",
            faults=1,
            detail=f"served cold-start v{pred['model_version']} from its disk cache",
        )
        assert (pred["model_version"], pred["source"]) == ("2", "coldstart")
    finally:
        api.stop()


def test_no_registry_and_no_cache_is_not_ready_but_answers(lifecycle: dict[str, Any]) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    api = start_api(_env(lifecycle, down, "empty-cache"), log_path=lifecycle["root"] / "c.log")
    try:
        ready = httpx.get(f"{api.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["coldstart_model"] is None
        pred = _coldstart(api)
        assert (pred["source"], pred["score"], pred["model_name"]) == (
            "prior",
            0.07,
            "purchase_30d",
        )
    finally:
        api.stop()
