"""One run at a time per lease in Dagster: the nightly and retrain jobs carry the
``lakescore/lease`` tag, and the repository's ``dagster.yaml`` (what the command line
installs in its DAGSTER_HOME) limits in-progress runs to one per tag value."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.config import dagster_instance_config
from dagster._utils.tags import TagConcurrencyLimitsCounter

from cli.runs import INSTANCE_YAML, dagster_home
from jobs.platform import NIGHT_LEASE, RETRAIN_LEASE
from pipelines.definitions import LEASE_TAG, NIGHTLY_JOB, RETRAIN_JOB, build_definitions
from schemas.settings import Settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_the_nightly_and_retrain_jobs_carry_their_lease_tag() -> None:
    defs = build_definitions(Settings(schedule={"nightly_cron": "30 1 * * *", "timezone": "UTC"}))
    assert defs.resolve_job_def(NIGHTLY_JOB).tags[LEASE_TAG] == NIGHT_LEASE == "night"
    assert defs.resolve_job_def(RETRAIN_JOB).tags[LEASE_TAG] == RETRAIN_LEASE == "retrain"
    # Runs the schedule and the sensor start carry the job's tags.
    schedules = {s.job_name for s in defs.schedules or []}
    assert NIGHTLY_JOB in schedules


def test_the_instance_yaml_limits_runs_to_one_per_lease(tmp_path: Path) -> None:
    assert INSTANCE_YAML == REPO / "dagster.yaml"
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML.read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema check
    runs = config["concurrency"]["runs"]
    assert runs["tag_concurrency_limits"] == [
        {"key": LEASE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert runs["max_concurrent_runs"] >= 3  # a night, a retrain and maintenance side by side

    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        queue = instance.get_concurrency_config().run_queue_config
    finally:
        instance.dispose()
    assert queue is not None and queue.tag_concurrency_limits == runs["tag_concurrency_limits"]

    def run(lease: str) -> SimpleNamespace:
        return SimpleNamespace(tags={LEASE_TAG: lease, "dagster/partition": "1998-02-01"})

    # What the queue daemon asks: with a night in progress, a second night waits (another
    # score date too), a retrain does not.
    counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [run(NIGHT_LEASE)])
    assert counter.is_blocked(run(NIGHT_LEASE))
    assert not counter.is_blocked(run(RETRAIN_LEASE))
    assert not counter.is_blocked(SimpleNamespace(tags={}))


def test_the_command_line_installs_the_instance_yaml_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "")  # unset for dagster_home, restored afterwards
    home = dagster_home(Settings(data_dir=str(tmp_path)))
    assert home == tmp_path / "dagster"
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == yaml.safe_load(
        INSTANCE_YAML.read_text()
    )
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # the operator's own
    dagster_home(Settings(data_dir=str(tmp_path)))
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
