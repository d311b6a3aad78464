"""Model definitions in configuration (pure: settings parsing only, no Spark)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.features import FEATURE_NAMES
from schemas.models import find_definition, model_definitions
from schemas.settings import Settings

pytestmark = pytest.mark.unit


def test_second_model_is_a_config_entry() -> None:
    settings = Settings(
        model={
            "name": "purchase_30d",
            "additional": [
                {
                    "name": "purchase_90d",
                    "horizon_days": 90,
                    "features": ["recency_days", "frequency_all"],
                }
            ],
        }
    )
    primary, second = model_definitions(settings)
    assert primary.name == "purchase_30d" and primary.feature_names == list(FEATURE_NAMES)
    assert second.horizon_days == 90 and second.label == "ordered"
    assert second.feature_names == ["recency_days", "frequency_all"]
    assert find_definition(settings, "purchase_90d") == second


def test_bad_definitions_are_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="label"):
        Settings(model={"additional": [{"name": "spend_90d", "label": "spend"}]})
    with pytest.raises(ValidationError, match="features listed twice"):
        Settings(model={"features": [], "additional": [{"name": "x", "features": ["a", "a"]}]})
    twice = Settings(model={"name": "m", "additional": [{"name": "m"}]})
    with pytest.raises(ValueError, match="defined twice"):
        model_definitions(twice)
    with pytest.raises(KeyError, match="no model definition named 'nope'"):
        find_definition(Settings(), "nope")
