"""Model definitions in configuration (pure: settings parsing only, no Spark)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from schemas.features import FEATURE_NAMES
from schemas.models import LABEL_KINDS, LABEL_TASKS
from schemas.settings import Settings, find_definition, model_definitions

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
        Settings(model={"additional": [{"name": "churn_90d", "label": "churned"}]})
    with pytest.raises(ValidationError, match="features listed twice"):
        Settings(model={"features": [], "additional": [{"name": "x", "features": ["a", "a"]}]})
    twice = Settings(model={"name": "m", "additional": [{"name": "m"}]})
    with pytest.raises(ValueError, match="defined twice"):
        model_definitions(twice)
    with pytest.raises(KeyError, match="no model definition named 'nope'"):
        find_definition(Settings(), "nope")


def test_the_label_decides_the_task() -> None:
    assert set(LABEL_TASKS) == set(LABEL_KINDS)
    settings = Settings(
        model={"additional": [{"name": "spend_90d", "label": "spend", "horizon_days": 90}]}
    )
    primary, spend = model_definitions(settings)
    assert (primary.label, primary.task) == ("ordered", "binary")
    assert (spend.label, spend.task, spend.horizon_days) == ("spend", "regression", 90)


def test_the_documented_spend_example_in_local_yaml_is_a_valid_definition() -> None:
    lines = Path("conf/local.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# additional:")
    block = []
    for line in lines[start:]:
        if not line.lstrip().startswith("#"):
            break
        block.append(line.replace("# ", "", 1))
    example = yaml.safe_load("\n".join(block))
    settings = Settings(model=example)
    (spend,) = settings.model.additional
    assert (spend.name, spend.task, spend.horizon_days) == ("spend_90d", "regression", 90)
    assert Settings().model.additional == []  # documented, not enabled by default
