"""The full sync's swap deadline grows with the documents built, never below its floor."""

from __future__ import annotations

import pytest

from jobs.sync.paths import swap_deadline_s
from schemas.settings import MongoSettings, Settings

pytestmark = pytest.mark.unit


def _settings(**mongo: float) -> Settings:
    return Settings().model_copy(update={"mongo": MongoSettings(**mongo)})


def test_small_collections_get_the_configured_floor() -> None:
    s = _settings(swap_timeout_ms=60_000, swap_ms_per_document=0.15)
    assert swap_deadline_s(s, documents=0) == 60.0
    assert swap_deadline_s(s, documents=1_000) == 60.0
    assert swap_deadline_s(s, documents=400_000) == 60.0  # 60 s exactly at the floor


def test_large_collections_get_their_per_document_budget() -> None:
    s = _settings(swap_timeout_ms=60_000, swap_ms_per_document=0.15)
    # 758,134 documents took 49.6 s on the local server: the deadline leaves about twice that.
    assert swap_deadline_s(s, documents=758_134) == pytest.approx(113.7201)
    assert swap_deadline_s(s, documents=2_000_000) == pytest.approx(300.0)
    assert swap_deadline_s(s, documents=2_000_000) > swap_deadline_s(s, documents=1_000_000)


def test_the_defaults_cover_the_measured_rename() -> None:
    defaults = _settings()
    assert swap_deadline_s(defaults, documents=758_134) > 49.6 * 2
    assert swap_deadline_s(defaults, documents=10) == MongoSettings().swap_timeout_ms / 1000


def test_no_per_document_budget_keeps_the_floor_alone() -> None:
    s = _settings(swap_timeout_ms=5_000, swap_ms_per_document=0.0)
    assert swap_deadline_s(s, documents=10_000_000) == 5.0
