"""The one step every fitted model goes through: evaluate -> log + register -> validate -> gate.

``evaluate_and_register`` takes a :class:`~jobs.training.candidate.Candidate` of any
model kind: the baselines and the current champion are scored on the candidate's own
holdout rows, the run is logged and the model registered, the logged model is
validated, the gate decides, and the decision is acted on (aliases) and recorded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import SparkSession

from jobs.platform import CHAMPION, configure_mlflow, load_booster, version_by_alias
from jobs.training.bootstrap import compare
from jobs.training.calibration import reliability_curve
from jobs.training.candidate import Candidate, Champion, IncompatibleChampionError
from jobs.training.evaluation import baseline_metrics, filled_metrics
from jobs.training.gate import GateDecision, decide
from jobs.training.gate_log import DecisionRecord, conclude_gate
from jobs.training.run_logging import log_candidate_run
from jobs.training.trainset import Lineage, TrainingData
from jobs.training.validation import validate_logged_model
from schemas.settings import Settings

VALIDATION_SAMPLE_ROWS = 500


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    model_name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    decision: GateDecision
    champion_version: str | None = None
    champion_metrics: dict[str, float] | None = None
    as_of_dates: list[dt.date] = field(default_factory=list)
    lineage: list[Lineage] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ChampionOnHoldout:
    """The current champion on the candidate's holdout rows (``problem``: it could not score them)."""

    version: str | None = None
    metrics: dict[str, float] | None = None
    scores: np.ndarray | None = None
    problem: str | None = None


def champion_on_holdout(settings: Settings, *, candidate: Candidate) -> ChampionOnHoldout:
    """The current champion's predictions and metrics on exactly the candidate's holdout rows."""
    definition = candidate.definition
    client = configure_mlflow(settings)
    current = version_by_alias(client, model_name=definition.name, alias=CHAMPION)
    if current is None:
        return ChampionOnHoldout()
    version = str(current.version)
    champion = Champion(
        version=version,
        run_id=current.run_id or None,
        booster=load_booster(model_name=definition.name, version=version),
    )
    try:
        inputs = candidate.champion_inputs(candidate.holdout, champion)
    except IncompatibleChampionError as exc:
        return ChampionOnHoldout(version=version, problem=str(exc))
    scores = np.asarray(champion.booster.predict(inputs), dtype=float)
    y_hold = candidate.holdout["label"].to_numpy(float)
    return ChampionOnHoldout(
        version=version, metrics=filled_metrics(definition.task, y_hold, scores), scores=scores
    )


def calibration_record(candidate: Candidate, y_hold: np.ndarray) -> dict[str, object] | None:
    """What calibration did, the holdout's calibration error and reliability curve."""
    if candidate.calibration is None:
        return None
    return {
        **candidate.calibration.as_json(),
        "holdout_error": candidate.metrics.get("calibration_error"),
        "holdout_curve": reliability_curve(y_hold, candidate.scores),
    }


def evaluate_and_register(
    spark: SparkSession,
    settings: Settings,
    *,
    candidate: Candidate,
    data: TrainingData,
) -> TrainResult:
    """Log and register the candidate, validate what was logged, gate it, record the decision."""
    definition = candidate.definition
    name, task = definition.name, definition.task
    gate = settings.gate
    client = configure_mlflow(settings)
    y_hold = candidate.holdout["label"].to_numpy(float)
    baselines = baseline_metrics(task, y_hold, candidate.baseline_scores)
    champ = champion_on_holdout(settings, candidate=candidate)
    comparison = (
        None
        if champ.scores is None
        else compare(
            task,
            y_hold,
            candidate=candidate.scores,
            champion=champ.scores,
            resamples=gate.bootstrap_resamples,
            confidence=gate.confidence,
            seed=gate.bootstrap_seed,
        )
    )
    run_id, version = log_candidate_run(
        settings,
        candidate=candidate,
        baselines=baselines,
        data=data,
        comparison=comparison,
    )
    problems = validate_logged_model(
        model_uri=f"models:/{name}/{version}",
        booster=candidate.booster,
        features=definition.feature_names,
        sample=candidate.inputs.head(VALIDATION_SAMPLE_ROWS),
        scores=candidate.scores,
        max_diff=settings.gate.max_prediction_diff,
        task=task,
    )
    decision = decide(
        task=task,
        candidate=candidate.metrics,
        champion=champ.metrics,
        baselines=baselines,
        gate=gate,
        problems=problems,
        comparison=comparison,
    )
    if champ.problem and decision.promote:
        decision = GateDecision(promote=False, reason=champ.problem)
    decision = conclude_gate(  # not promoted after all when the champion moved meanwhile
        spark,
        settings,
        client,
        DecisionRecord(
            model_name=name,
            candidate_version=version,
            champion_version=champ.version,
            decision=decision,
            score_date=data.split.score_date,
            holdout_as_of_date=data.split.holdout,
            candidate=candidate.metrics,
            champion=champ.metrics,
            baselines=baselines,
            run_id=run_id,
            calibration=calibration_record(candidate, y_hold),
        ),
    )
    return TrainResult(
        model_name=name,
        version=version,
        run_id=run_id,
        metrics=candidate.metrics,
        baselines=baselines,
        decision=decision,
        champion_version=champ.version,
        champion_metrics=champ.metrics,
        as_of_dates=data.as_of_dates,
        lineage=data.lineage,
    )
