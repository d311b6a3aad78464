"""A failed night says it was held only when the scoring audit held it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cli.runs import held_by_audit
from pipelines.keys import CURRENT_KEY, HISTORY_KEY

pytestmark = pytest.mark.unit


def _check(name: str, *, passed: bool, key: object = HISTORY_KEY) -> SimpleNamespace:
    return SimpleNamespace(asset_key=key, check_name=name, passed=passed)


def test_a_failed_audit_check_holds_the_night() -> None:
    assert held_by_audit(
        [_check("freshness_check", passed=True), _check("score_drift", passed=False)]
    )


def test_an_overdue_freshness_check_alone_does_not_claim_the_night_was_held() -> None:
    assert not held_by_audit(
        [_check("freshness_check", passed=False), _check("score_rows", passed=True)]
    )


def test_other_assets_checks_do_not_hold_the_night() -> None:
    assert not held_by_audit([_check("score_drift", passed=False, key=CURRENT_KEY)])
