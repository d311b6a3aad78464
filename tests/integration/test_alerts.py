"""A failed step is reported to the configured webhook, with the run and the error."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import DagsterInstance

from pipelines.definitions import RETRAIN_JOB, build_definitions
from pipelines.resources import LakescoreResource
from pipelines.schedules import RETRAIN_RUN_CONFIG
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def test_failed_step_posts_to_the_webhook(
    spark: Any,
    settings: Settings,
    webhook: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = webhook
    monkeypatch.setenv("LAKESCORE_ALERTS__WEBHOOK_URL", url)
    monkeypatch.setenv("LAKESCORE_SCHEDULE__STEP_RETRIES", "0")
    from schemas.settings import get_settings

    get_settings.cache_clear()
    try:
        run_settings = get_settings()
        defs = build_definitions(run_settings, resource=LakescoreResource())
        job = defs.resolve_job_def(RETRAIN_JOB)
        # 1997-01-02: no history at all before it, so training must fail.
        with DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                partition_key="1997-01-02",
                run_config=RETRAIN_RUN_CONFIG,
                instance=instance,
                raise_on_error=False,
            )
    finally:
        get_settings.cache_clear()
    assert not result.success
    assert len(received) == 1
    [alert] = received
    assert alert["event"] == "lakescore.step_failed"
    assert alert["run_id"] == result.run_id
    assert alert["step"] == "models__champion"
    assert alert["error"]
