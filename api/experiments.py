"""Traffic splits (``api.experiments``): which arm each customer's answer comes from.

A customer's point on the hash range is ``blake2b(salt, customer id)`` as a fraction of
2^64: the same on every request, process and machine. With K arms the range is cut into
K slices, one per arm in the order configured; an arm takes the first ``share`` of the
range from its slice's start (so each share is at most 1/K), and the rest of every slice
belongs to the champion. A change of one arm's share therefore moves customers only
between that arm and the champion, never between two other arms; a new salt, or adding
or removing an arm, reassigns everyone (start a new experiment then).

The arm is assigned to every answer of the split's model, whatever its source
(intention to treat): an answer from the model's prior, or a batch answer whose arm's
version was not scored for that customer, still names the arm, and its ``model_version``
says what was served.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from schemas.settings import ExperimentSettings, Settings

CHAMPION_ARM = "champion"
_SCALE = float(2**64)


def hash_point(salt: str, customer_id: str) -> float:
    """The customer's point in [0, 1) for ``salt``."""
    # Customer ids never hold a NUL (schemas.serving.CUSTOMER_ID_PATTERN).
    digest = hashlib.blake2b(f"{salt}\0{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, kw_only=True)
class Arm:
    name: str
    version: str  # "challenger", a registered version number, or "champion"


@dataclass(frozen=True, kw_only=True)
class Split:
    """One model's traffic split."""

    experiment: str
    model: str
    salt: str
    arms: tuple[Arm, ...]
    shares: tuple[float, ...]

    @classmethod
    def of(cls, experiment: ExperimentSettings, *, model: str) -> Split:
        return cls(
            experiment=experiment.name,
            model=model,
            salt=experiment.salt or experiment.name,
            arms=tuple(Arm(name=a.name, version=a.version) for a in experiment.arms),
            shares=tuple(a.share for a in experiment.arms),
        )

    def arm_of(self, customer_id: str) -> Arm:
        point = hash_point(self.salt, customer_id) * len(self.arms)
        slot = min(int(point), len(self.arms) - 1)
        if point - slot < self.shares[slot] * len(self.arms):
            return self.arms[slot]
        return CHAMPION


CHAMPION = Arm(name=CHAMPION_ARM, version=CHAMPION_ARM)


def splits(settings: Settings) -> dict[str, Split]:
    """Each split model's split, by model name."""
    out = {}
    for experiment in settings.api.experiments:
        model = experiment.model or settings.model.name
        out[model] = Split.of(experiment, model=model)
    return out


def arm_entry(arm: Arm, hit: dict[str, Any]) -> tuple[float, str | None] | None:
    """The score and version ``arm`` serves from a model's document entry ``hit``, or None
    when the entry has no score of the arm's version (the champion's is served then)."""
    if arm.version == CHAMPION_ARM:
        return None
    version = hit.get("challenger_version") if arm.version == "challenger" else arm.version
    if version is None:
        return None
    score = (hit.get("shadow_scores") or {}).get(version)
    if score is None:
        return None
    return score, version
