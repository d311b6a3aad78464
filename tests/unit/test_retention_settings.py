"""The retention settings refuse, when they load, a VACUUM or log retention shorter than
the rollback window or the sync's change-feed window, naming both values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobs.platform.retention import retention_properties
from schemas.settings import RetentionSettings, Settings

pytestmark = pytest.mark.unit


def test_the_defaults_keep_both_windows_and_delta_s_minimum() -> None:
    cfg = Settings().retention
    assert cfg.vacuum_hours >= 168
    assert cfg.vacuum_hours >= cfg.rollback_hours > 0
    assert cfg.vacuum_hours >= cfg.sync_feed_hours > 0
    assert retention_properties(cfg) == {
        "delta.deletedFileRetentionDuration": "interval 192 hours",
        "delta.logRetentionDuration": "interval 30 days",
    }


def test_a_vacuum_shorter_than_the_rollback_window_is_refused_at_load() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(retention={"vacuum_hours": 200, "rollback_nights": 10})
    message = str(error.value)
    assert "retention.vacuum_hours=200" in message
    assert "retention.rollback_nights=10, 240 h" in message


def test_a_vacuum_shorter_than_the_change_feed_window_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKESCORE_RETENTION__SYNC_FEED_HOURS", "300")
    with pytest.raises(ValidationError) as error:
        Settings()
    message = str(error.value)
    assert "retention.vacuum_hours=192" in message
    assert "retention.sync_feed_hours=300" in message


def test_a_log_retention_shorter_than_a_window_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"log_retention_days=2 \(48 h\).*rollback"):
        RetentionSettings(log_retention_days=2)


def test_below_delta_s_minimum_only_when_allowed() -> None:
    short = {"vacuum_hours": 2, "rollback_nights": 0, "sync_feed_hours": 1}
    with pytest.raises(ValidationError, match="below Delta's 7-day minimum"):
        RetentionSettings(**short)
    cfg = RetentionSettings(**short, allow_short_vacuum=True)
    assert retention_properties(cfg)["delta.deletedFileRetentionDuration"] == "interval 2 hours"
    seconds = RetentionSettings(
        vacuum_hours=0.5, rollback_nights=0, sync_feed_hours=0.25, allow_short_vacuum=True
    )
    assert retention_properties(seconds)["delta.deletedFileRetentionDuration"] == (
        "interval 1800 seconds"
    )
