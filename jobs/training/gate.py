"""The champion/challenger gate: a candidate is promoted only when it is demonstrably better.

Order of the checks (the first failing one is the reason):
1. validation problems (signature mismatch, NaN predictions, ...) -> never promoted;
2. metric floors: AUC and log loss must be numbers, AUC at least ``gate.min_auc``;
3. every baseline (prior, recency/frequency) must be beaten on AUC;
4. against the champion, on identical holdout rows: the AUC gain must EXCEED
   ``gate.min_auc_gain`` (a tie keeps the champion) and the log loss may not grow
   by more than ``gate.max_log_loss_increase``.

Regression models (task ``regression``, label ``spend``) follow the same order on
their own metrics: RMSE (lower is better) must be a number and beat every baseline
(mean amount, last year's pace); against the champion it must fall by MORE than
``gate.min_rmse_reduction`` of the champion's RMSE, and the normalised Gini (the
ranking) may not fall by more than ``gate.max_gini_decrease``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.models import ModelTask
from schemas.settings import GateSettings


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    promote: bool
    reason: str
    valid: bool = True

    @property
    def verdict(self) -> str:
        if not self.valid:
            return "invalid"
        return "promote" if self.promote else "reject"


def _reject(reason: str) -> GateDecision:
    return GateDecision(promote=False, reason=reason)


def decide(
    *,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    gate: GateSettings,
    problems: list[str] | None = None,
    task: ModelTask = "binary",
) -> GateDecision:
    """Compare metrics computed on identical holdout rows; ``problems`` come from validation."""
    if problems:
        return GateDecision(
            promote=False, valid=False, reason="validation failed: " + "; ".join(problems)
        )
    if task == "regression":
        return _decide_regression(candidate, champion, baselines, gate)
    auc = candidate.get("roc_auc", math.nan)
    loss = candidate.get("log_loss", math.nan)
    if math.isnan(auc) or math.isnan(loss):
        return _reject("candidate metrics are NaN")
    if auc < gate.min_auc:
        return _reject(f"AUC {auc:.4f} below floor {gate.min_auc}")
    for name, base in sorted(baselines.items()):
        base_auc = base.get("roc_auc", math.nan)
        if not math.isnan(base_auc) and auc <= base_auc:
            return _reject(f"AUC {auc:.4f} does not beat baseline {name} {base_auc:.4f}")
    if champion is None:
        return GateDecision(promote=True, reason="no champion yet; beats every baseline")
    gain = auc - champion["roc_auc"]
    loss_change = loss - champion["log_loss"]
    if not gain > gate.min_auc_gain:
        return _reject(
            f"AUC gain {gain:+.4f} over the champion does not exceed {gate.min_auc_gain:+.4f}"
        )
    if loss_change > gate.max_log_loss_increase:
        return _reject(
            f"log loss change {loss_change:+.4f} above allowed {gate.max_log_loss_increase:+.4f}"
        )
    return GateDecision(
        promote=True, reason=f"AUC gain {gain:+.4f}, log loss change {loss_change:+.4f}"
    )


def _decide_regression(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    gate: GateSettings,
) -> GateDecision:
    rmse = candidate.get("rmse", math.nan)
    gini = candidate.get("gini", math.nan)
    if math.isnan(rmse) or math.isnan(gini):
        return _reject("candidate metrics are NaN")
    for name, base in sorted(baselines.items()):
        base_rmse = base.get("rmse", math.nan)
        if not math.isnan(base_rmse) and rmse >= base_rmse:
            return _reject(f"RMSE {rmse:.4f} does not beat baseline {name} {base_rmse:.4f}")
    if champion is None:
        return GateDecision(promote=True, reason="no champion yet; beats every baseline")
    reduction = (champion["rmse"] - rmse) / champion["rmse"] if champion["rmse"] > 0 else 0.0
    gini_change = gini - champion["gini"]
    if not reduction > gate.min_rmse_reduction:
        return _reject(
            f"RMSE reduction {reduction:+.2%} over the champion does not exceed "
            f"{gate.min_rmse_reduction:+.2%}"
        )
    if -gini_change > gate.max_gini_decrease:
        return _reject(
            f"Gini change {gini_change:+.4f} below allowed {-gate.max_gini_decrease:+.4f}"
        )
    return GateDecision(
        promote=True, reason=f"RMSE reduction {reduction:+.2%}, Gini change {gini_change:+.4f}"
    )
