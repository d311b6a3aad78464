"""The champion/challenger gate: a candidate is promoted only when it is demonstrably better."""

from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.settings import Settings


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    promote: bool
    reason: str

    @property
    def verdict(self) -> str:
        return "promote" if self.promote else "reject"


def decide(
    *,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    settings: Settings,
) -> GateDecision:
    """Compare metrics computed on identical holdout rows."""
    gate = settings.gate
    auc = candidate.get("roc_auc", float("nan"))
    if math.isnan(auc) or math.isnan(candidate.get("log_loss", float("nan"))):
        return GateDecision(promote=False, reason="candidate metrics are NaN")
    if auc < gate.min_auc:
        return GateDecision(promote=False, reason=f"AUC {auc:.4f} below floor {gate.min_auc}")
    for name, base in baselines.items():
        base_auc = base.get("roc_auc", float("nan"))
        if not math.isnan(base_auc) and auc <= base_auc:
            return GateDecision(
                promote=False, reason=f"AUC {auc:.4f} does not beat baseline {name} {base_auc:.4f}"
            )
    if champion is None:
        return GateDecision(promote=True, reason="no champion yet; beats every baseline")
    gain = auc - champion["roc_auc"]
    loss_change = candidate["log_loss"] - champion["log_loss"]
    if gain < gate.min_auc_gain:
        return GateDecision(
            promote=False,
            reason=f"AUC gain {gain:+.4f} below required {gate.min_auc_gain:+.4f}",
        )
    if loss_change > gate.max_log_loss_increase:
        return GateDecision(
            promote=False,
            reason=f"log loss change {loss_change:+.4f} above allowed {gate.max_log_loss_increase}",
        )
    return GateDecision(
        promote=True, reason=f"AUC gain {gain:+.4f}, log loss change {loss_change:+.4f}"
    )
