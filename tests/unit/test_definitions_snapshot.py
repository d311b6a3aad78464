"""The Dagster definitions keep the asset keys, dependencies, checks, jobs, schedules and
sensors recorded in ``snapshots/definitions.json``; a change to the graph updates the
snapshot in the same commit, on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagster import Definitions

from pipelines.definitions import build_definitions
from schemas.settings import Settings

pytestmark = pytest.mark.unit

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def snapshot(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    return {
        "deps": {
            k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
            for k in sorted(keys, key=lambda k: k.to_user_string())
        },
        "assets": sorted(k.to_user_string() for k in keys),
        "checks": sorted(
            f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys
        ),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_definitions_match_the_snapshot() -> None:
    defs = build_definitions(Settings(schedule={"nightly_cron": "30 1 * * *", "timezone": "UTC"}))
    assert snapshot(defs) == json.loads(SNAPSHOT.read_text())
