"""The champion/challenger gate: a candidate is promoted only when it is demonstrably better.

Order of the checks (the first failing one is the reason):
1. validation problems (signature mismatch, NaN predictions, ...) -> never promoted;
2. metric floors: AUC and log loss must be numbers, AUC at least ``gate.min_auc``;
3. every baseline (prior, recency/frequency) must be beaten on AUC;
4. against the champion, on identical holdout rows, with the paired bootstrap
   intervals of challenger minus champion (jobs/training/bootstrap.py): the LOWER
   bound of the AUC gain's interval must exceed ``gate.min_auc_gain`` (so a gain
   within the noise, or a tie, keeps the champion), and the log loss may not be
   significantly worse: the lower bound of its increase may not exceed
   ``gate.max_log_loss_increase``.

Regression models (task ``regression``, label ``spend``) follow the same order on
their own metrics: RMSE (lower is better) must be a number and beat every baseline
(mean amount, last year's pace); against the champion the lower bound of the RMSE
reduction (a fraction of the champion's RMSE) must exceed ``gate.min_rmse_reduction``,
and the normalised Gini (the ranking) may not be significantly lower: the upper
bound of its change may not fall below ``-gate.max_gini_decrease``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs.training.bootstrap import Comparison
from schemas.models import ModelTask
from schemas.settings import GateSettings


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    promote: bool
    reason: str
    valid: bool = True
    comparison: Comparison | None = None  # None: no champion to compare with

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
    comparison: Comparison | None = None,
) -> GateDecision:
    """Compare metrics computed on identical holdout rows; ``problems`` come from validation.

    ``comparison`` (the paired intervals against the champion) is required with a champion.
    """
    if problems:
        return GateDecision(
            promote=False, valid=False, reason="validation failed: " + "; ".join(problems)
        )
    if champion is not None and comparison is None:
        raise ValueError("a champion to compare with needs the paired bootstrap comparison")
    decision = (
        _decide_regression(candidate, champion, baselines, gate, comparison)
        if task == "regression"
        else _decide_binary(candidate, champion, baselines, gate, comparison)
    )
    return GateDecision(promote=decision.promote, reason=decision.reason, comparison=comparison)


def _decide_binary(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    gate: GateSettings,
    comparison: Comparison | None,
) -> GateDecision:
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
    if champion is None or comparison is None:
        return GateDecision(promote=True, reason="no champion yet; beats every baseline")
    gain, loss_change = comparison.primary, comparison.secondary
    if not gain.low > gate.min_auc_gain:
        return _reject(
            f"AUC gain {gain.estimate:+.4f}, interval [{gain.low:+.4f}, {gain.high:+.4f}]: "
            f"its lower bound does not exceed {gate.min_auc_gain:+.4f}"
        )
    if loss_change.low > gate.max_log_loss_increase:
        return _reject(
            f"log loss significantly worse: change {loss_change.estimate:+.4f}, interval "
            f"[{loss_change.low:+.4f}, {loss_change.high:+.4f}] above allowed "
            f"{gate.max_log_loss_increase:+.4f}"
        )
    return GateDecision(
        promote=True,
        reason=(
            f"AUC gain {gain.estimate:+.4f} [{gain.low:+.4f}, {gain.high:+.4f}], "
            f"log loss change {loss_change.estimate:+.4f} "
            f"[{loss_change.low:+.4f}, {loss_change.high:+.4f}]"
        ),
    )


def _decide_regression(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    gate: GateSettings,
    comparison: Comparison | None,
) -> GateDecision:
    rmse = candidate.get("rmse", math.nan)
    gini = candidate.get("gini", math.nan)
    if math.isnan(rmse) or math.isnan(gini):
        return _reject("candidate metrics are NaN")
    for name, base in sorted(baselines.items()):
        base_rmse = base.get("rmse", math.nan)
        if not math.isnan(base_rmse) and rmse >= base_rmse:
            return _reject(f"RMSE {rmse:.4f} does not beat baseline {name} {base_rmse:.4f}")
    if champion is None or comparison is None:
        return GateDecision(promote=True, reason="no champion yet; beats every baseline")
    reduction, gini_change = comparison.primary, comparison.secondary
    if not reduction.low > gate.min_rmse_reduction:
        return _reject(
            f"RMSE reduction {reduction.estimate:+.2%}, interval "
            f"[{reduction.low:+.2%}, {reduction.high:+.2%}]: its lower bound does not exceed "
            f"{gate.min_rmse_reduction:+.2%}"
        )
    if gini_change.high < -gate.max_gini_decrease:
        return _reject(
            f"Gini significantly lower: change {gini_change.estimate:+.4f}, interval "
            f"[{gini_change.low:+.4f}, {gini_change.high:+.4f}] below allowed "
            f"{-gate.max_gini_decrease:+.4f}"
        )
    return GateDecision(
        promote=True,
        reason=(
            f"RMSE reduction {reduction.estimate:+.2%} [{reduction.low:+.2%}, "
            f"{reduction.high:+.2%}], Gini change {gini_change.estimate:+.4f} "
            f"[{gini_change.low:+.4f}, {gini_change.high:+.4f}]"
        ),
    )
