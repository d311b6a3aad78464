"""Traffic splits: deterministic, within their shares, stable, and a share change moves only
the customers it must; the settings refuse splits that cannot work."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.experiments import CHAMPION_ARM, Split, hash_point, splits
from api.lookup_service import answer, coldstart_answer
from schemas.coldstart import ColdStartContext
from schemas.settings import ExperimentSettings, Settings, pinned_versions

pytestmark = pytest.mark.unit

IDS = [f"C{i:07d}" for i in range(100_000)]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in list(__import__("os").environ):
        if var.startswith("LAKESCORE_") or var in ("MONGO_URI", "MLFLOW_TRACKING_URI"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKESCORE_CONF_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def split(*arms: tuple[str, float, str], salt: str = "s1") -> Split:
    experiment = ExperimentSettings(
        name="exp",
        salt=salt,
        arms=[{"name": n, "share": s, "version": v} for n, s, v in arms],  # type: ignore[misc]
    )
    return Split.of(experiment, model="purchase_30d")


def assignment(s: Split) -> dict[str, str]:
    return {cid: s.arm_of(cid).name for cid in IDS}


def within(count: int, *, share: float, n: int = len(IDS)) -> bool:
    """``count`` is within five binomial standard deviations of ``share`` of ``n``."""
    sd = math.sqrt(n * share * (1 - share))
    return abs(count - n * share) <= 5 * sd + 1


def test_points_are_uniform_and_deterministic() -> None:
    points = [hash_point("s1", cid) for cid in IDS]
    assert all(0.0 <= p < 1.0 for p in points)
    assert points == [hash_point("s1", cid) for cid in IDS]
    # Ten deciles, each within tolerance of a tenth.
    deciles = [0] * 10
    for p in points:
        deciles[int(p * 10)] += 1
    assert all(within(c, share=0.1) for c in deciles), deciles
    # Another salt is another assignment (not a shifted copy of the same one).
    other = [hash_point("s2", cid) for cid in IDS]
    agree = sum(1 for a, b in zip(points, other, strict=True) if int(a * 10) == int(b * 10))
    assert within(agree, share=0.1)


@pytest.mark.parametrize(
    "arms",
    [
        (("treatment", 0.1, "challenger"),),
        (("treatment", 0.5, "challenger"),),
        (("a", 0.2, "challenger"), ("b", 0.05, "7")),
        (("a", 0.1, "challenger"), ("b", 0.3, "7"), ("c", 0.0, "8")),
    ],
)
def test_each_arm_gets_its_share(arms: tuple[tuple[str, float, str], ...]) -> None:
    got = assignment(split(*arms))
    counts: dict[str, int] = {}
    for name in got.values():
        counts[name] = counts.get(name, 0) + 1
    champion_share = 1 - sum(s for _, s, _ in arms)
    assert within(counts.get(CHAMPION_ARM, 0), share=champion_share), counts
    for name, share, _ in arms:
        assert within(counts.get(name, 0), share=share), (name, counts)


def test_a_customer_keeps_its_arm_across_instances_and_calls() -> None:
    first = assignment(split(("treatment", 0.3, "challenger")))
    again = split(("treatment", 0.3, "challenger"))
    assert all(again.arm_of(cid).name == arm for cid, arm in first.items())
    assert first != assignment(split(("treatment", 0.3, "challenger"), salt="s2"))


def test_a_share_change_moves_only_between_that_arm_and_the_champion() -> None:
    before = assignment(split(("a", 0.10, "challenger"), ("b", 0.20, "7")))
    after = assignment(split(("a", 0.25, "challenger"), ("b", 0.20, "7")))
    moved = {(before[c], after[c]) for c in IDS if before[c] != after[c]}
    assert moved == {(CHAMPION_ARM, "a")}
    count = sum(1 for c in IDS if before[c] != after[c])
    assert within(count, share=0.15)
    # Lowering a share gives its customers back to the champion only.
    lower = assignment(split(("a", 0.10, "challenger"), ("b", 0.05, "7")))
    assert {(before[c], lower[c]) for c in IDS if before[c] != lower[c]} == {("b", CHAMPION_ARM)}


def test_the_settings_refuse_splits_that_cannot_work(clean_env: Path) -> None:
    def settings(**experiment: Any) -> Settings:
        base = {"name": "exp", "arms": [{"name": "t", "share": 0.1}]}
        return Settings(api={"experiments": [{**base, **experiment}]})

    assert settings().api.experiments[0].arms[0].version == "challenger"
    with pytest.raises(ValidationError, match=r"at most 0\.5"):
        settings(arms=[{"name": "a", "share": 0.6}, {"name": "b", "share": 0.1}])
    with pytest.raises(ValidationError, match="not 'champion'"):
        settings(arms=[{"name": "champion", "share": 0.1}])
    with pytest.raises(ValidationError, match="not a configured model"):
        settings(model="no_such_model")
    with pytest.raises(ValidationError, match="version"):
        settings(arms=[{"name": "t", "share": 0.1, "version": "latest"}])
    with pytest.raises(ValidationError, match="more than one experiment"):
        Settings(
            api={
                "experiments": [
                    {"name": "one", "arms": [{"name": "t", "share": 0.1}]},
                    {"name": "two", "arms": [{"name": "t", "share": 0.1}]},
                ]
            }
        )
    pinned = settings(
        arms=[{"name": "a", "share": 0.2, "version": "7"}, {"name": "b", "share": 0.1}]
    )
    assert pinned_versions(pinned, "purchase_30d") == ["7"]
    assert pinned_versions(pinned, "other") == []


def entry(**extra: Any) -> dict[str, Any]:
    return {
        "score": 0.3,
        "model_version": "3",
        "score_date": "2026-01-01",
        "scored_at": None,
        "reasons": [{"feature": "recency_days", "contribution": 0.2, "value": 4.0}],
        **extra,
    }


def test_answers_serve_the_arm_and_name_it(clean_env: Path) -> None:
    settings = Settings(
        api={
            "experiments": [
                {
                    "name": "exp",
                    "arms": [
                        {"name": "chal", "share": 0.4, "version": "challenger"},
                        {"name": "pin", "share": 0.4, "version": "2"},
                    ],
                }
            ]
        }
    )
    by_model = splits(settings)
    s = by_model["purchase_30d"]
    ids = {s.arm_of(c).name: c for c in IDS[:200]}
    assert set(ids) == {CHAMPION_ARM, "chal", "pin"}
    hit = entry(challenger_version="4", shadow_scores={"4": 0.41, "2": 0.22})
    day = dt.date(2026, 1, 2)

    def served(cid: str, doc_entry: dict[str, Any]) -> tuple[Any, ...]:
        result = answer(
            customer_id=cid,
            document={"models": {"purchase_30d": doc_entry}},
            priors={},
            settings=settings,
            model="purchase_30d",
            degraded=False,
            today=day,
            splits=by_model,
        )
        [p] = result.predictions
        return p.experiment, p.arm, p.model_version, p.score, p.reasons is not None

    assert served(ids[CHAMPION_ARM], hit) == ("exp", CHAMPION_ARM, "3", 0.3, True)
    assert served(ids["chal"], hit) == ("exp", "chal", "4", 0.41, False)
    assert served(ids["pin"], hit) == ("exp", "pin", "2", 0.22, False)
    # The arm's version was not scored for this customer: the champion's score, arm named.
    assert served(ids["pin"], entry(challenger_version="4", shadow_scores={"4": 0.41})) == (
        "exp",
        "pin",
        "3",
        0.3,
        True,
    )
    assert served(ids["chal"], entry()) == ("exp", "chal", "3", 0.3, True)
    # A prior answer names the arm too; an unsplit model names none.
    prior = answer(
        customer_id=ids["chal"],
        document=None,
        priors={"purchase_30d": {"prior": 0.07, "model_version": "3"}, "churn": {"prior": 0.2}},
        settings=settings,
        model=None,
        degraded=False,
        today=day,
        splits=by_model,
    )
    arms = {p.model_name: (p.source, p.arm) for p in prior.predictions}
    assert arms == {"churn": ("prior", None), "purchase_30d": ("prior", "chal")}
    # The cold-start route's batch tier is split the same way.
    cold = coldstart_answer(
        customer_id=ids["chal"],
        document={"models": {"purchase_30d": hit}},
        context=ColdStartContext(),
        coldstart=None,
        priors={},
        settings=settings,
        degraded=False,
        today=day,
        split=by_model["purchase_30d"],
    )
    [p] = cold.predictions
    assert (p.arm, p.model_version, p.score) == ("chal", "4", 0.41)
