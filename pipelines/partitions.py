"""The score-date partitions every nightly asset shares."""

from __future__ import annotations

import datetime as dt

from dagster import DailyPartitionsDefinition

from schemas.settings import Settings


def score_date_partitions(settings: Settings) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(
        start_date=settings.schedule.start_date, timezone=settings.schedule.timezone
    )


def partition_date(partition_key: str) -> dt.date:
    return dt.date.fromisoformat(partition_key)
