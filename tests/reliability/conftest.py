"""Fixtures of the reliability scenarios: one registry with a tiny champion for the scoring faults."""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import pytest

from schemas.settings import Settings
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model


@dataclass(frozen=True)
class Registry:
    settings: Settings  # a registry of its own; give each test a lake of its own (with_lake)
    champion: lgb.Booster


@pytest.fixture(scope="session")
def reliability_registry(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    s = isolated(settings, tmp_path_factory.mktemp("reliability"))
    return Registry(settings=s, champion=register_tiny_model(s, trees=60, train_rows=2_000))
