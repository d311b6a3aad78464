"""The executor every job runs with when the daemon or the UI launches it: one process (one
Spark session) per run for a local master, a process per step for a cluster; the lease
tags and the step retry policy unchanged by it."""

from __future__ import annotations

import pytest
from dagster import in_process_executor, multiprocess_executor

from pipelines.definitions import LEASE_TAG, NIGHTLY_JOB, RETRAIN_JOB, build_definitions
from pipelines.executors import is_local_master
from pipelines.lakehouse.maintenance import MAINTENANCE_JOB
from schemas.settings import Settings

pytestmark = pytest.mark.unit

JOBS = (NIGHTLY_JOB, RETRAIN_JOB, MAINTENANCE_JOB)


@pytest.mark.parametrize(
    ("master", "local"),
    [
        ("local", True),
        ("local[2]", True),
        ("local[*]", True),
        ("local-cluster[2,1,1024]", True),
        ("spark://spark-master:7077", False),
        ("yarn", False),
        ("k8s://https://kubernetes:443", False),
        ("sc://spark-connect:15002", False),
    ],
)
def test_local_masters(master: str, local: bool) -> None:
    assert is_local_master(master) is local


@pytest.mark.parametrize(
    ("master", "executor"),
    [("local[2]", in_process_executor), ("spark://spark-master:7077", multiprocess_executor)],
)
def test_every_job_runs_with_the_masters_executor(master: str, executor: object) -> None:
    defs = build_definitions(Settings(spark={"master": master}))
    jobs = {job.name: job for job in defs.resolve_all_job_defs()}
    assert set(JOBS) <= set(jobs)
    # The implicit asset job too: what the UI's "Materialize" launches.
    assert {name: job.executor_def for name, job in jobs.items()} == dict.fromkeys(jobs, executor)


def test_the_lease_tags_and_the_retry_policy_stay() -> None:
    settings = Settings(
        spark={"master": "local[2]"}, schedule={"step_retries": 3, "step_retry_delay_s": 1.5}
    )
    defs = build_definitions(settings)
    nightly = defs.resolve_job_def(NIGHTLY_JOB)
    assert nightly.tags[LEASE_TAG] == "night"
    assert defs.resolve_job_def(RETRAIN_JOB).tags[LEASE_TAG] == "retrain"
    policy = nightly.op_retry_policy
    assert policy is not None
    assert (policy.max_retries, policy.delay) == (3, 1.5)
    # The in-process executor applies it (its retries config is on by default).
    assert nightly.executor_def is in_process_executor
    assert in_process_executor.config_schema.as_field().default_value["retries"] == {"enabled": {}}
