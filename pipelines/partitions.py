"""The score-date partitions every nightly asset shares."""

from __future__ import annotations

import datetime as dt

from dagster import DailyPartitionsDefinition

from schemas.settings import Settings


def score_date_partitions(settings: Settings) -> DailyPartitionsDefinition:
    # end_offset=1: the night of day D scores D (features use orders before D), so
    # today's partition exists from midnight on.
    return DailyPartitionsDefinition(
        start_date=settings.schedule.start_date,
        timezone=settings.schedule.timezone,
        end_offset=1,
    )


def partition_date(partition_key: str) -> dt.date:
    return dt.date.fromisoformat(partition_key)
