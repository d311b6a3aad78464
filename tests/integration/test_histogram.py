"""The score histogram shown on the history asset: bins, counts and the Markdown table."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.monitoring.histogram import Bin, histogram_markdown, score_histogram

pytestmark = pytest.mark.integration


def test_bins_cover_every_score_once(spark: Any) -> None:
    scores = [0.0, 0.05, 0.1, 0.15, 0.5, 0.95, 1.0, 1.0]
    frame = spark.createDataFrame([(s,) for s in scores], "score DOUBLE")
    bins = score_histogram(frame, bins=4)
    assert [(b.low, b.high) for b in bins] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert [b.count for b in bins] == [4, 0, 1, 3]  # the maximum falls in the last bin


def test_one_distinct_score_is_one_bin(spark: Any) -> None:
    frame = spark.createDataFrame([(3.0,), (3.0,)], "score DOUBLE")
    assert score_histogram(frame, bins=10) == [Bin(low=3.0, high=4.0, count=2)]
    assert score_histogram(frame.where("score < 0"), bins=10) == []


def test_markdown_has_a_row_and_a_bar_per_bin() -> None:
    text = histogram_markdown([Bin(low=0.0, high=0.5, count=30), Bin(low=0.5, high=1.0, count=3)])
    rows = text.splitlines()[2:]
    assert rows[0] == "| 0 to 0.5 | 30 | " + "█" * 30 + " |"
    assert rows[1] == "| 0.5 to 1 | 3 | " + "█" * 3 + " |"
    assert histogram_markdown([]) == "no scores"
