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
from jobs.training.candidate import Candidate, Champion, IncompatibleChampionError
from jobs.training.evaluation import baseline_metrics, filled_metrics
from jobs.training.gate import GateDecision, decide
from jobs.training.gate_log import DecisionRecord, conclude_gate
from jobs.training.run_logging import log_candidate_run
from jobs.training.trainset import Lineage
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


def champion_on_holdout(
    settings: Settings, *, candidate: Candidate
) -> tuple[str | None, dict[str, float] | None, str | None]:
    """``(version, metrics, problem)`` of the current champion on the candidate's holdout rows."""
    definition = candidate.definition
    client = configure_mlflow(settings)
    current = version_by_alias(client, model_name=definition.name, alias=CHAMPION)
    if current is None:
        return None, None, None
    version = str(current.version)
    champion = Champion(
        version=version,
        run_id=current.run_id or None,
        booster=load_booster(model_name=definition.name, version=version),
    )
    try:
        inputs = candidate.champion_inputs(candidate.holdout, champion)
    except IncompatibleChampionError as exc:
        return version, None, str(exc)
    scores = np.asarray(champion.booster.predict(inputs), dtype=float)
    y_hold = candidate.holdout["label"].to_numpy(float)
    return version, filled_metrics(definition.task, y_hold, scores), None


def evaluate_and_register(
    spark: SparkSession,
    settings: Settings,
    *,
    candidate: Candidate,
    score_date: dt.date,
    as_of_dates: list[dt.date],
    lineage: list[Lineage],
) -> TrainResult:
    """Log and register the candidate, validate what was logged, gate it, record the decision."""
    definition = candidate.definition
    name, task = definition.name, definition.task
    client = configure_mlflow(settings)
    y_hold = candidate.holdout["label"].to_numpy(float)
    baselines = baseline_metrics(task, y_hold, candidate.baseline_scores)
    champ_version, champ_metrics, champ_problem = champion_on_holdout(settings, candidate=candidate)
    run_id, version = log_candidate_run(
        settings,
        candidate=candidate,
        baselines=baselines,
        score_date=score_date,
        as_of_dates=as_of_dates,
        lineage=lineage,
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
        champion=champ_metrics,
        baselines=baselines,
        gate=settings.gate,
        problems=problems,
    )
    if champ_problem and decision.promote:
        decision = GateDecision(promote=False, reason=champ_problem)
    conclude_gate(
        spark,
        settings,
        client,
        DecisionRecord(
            model_name=name,
            candidate_version=version,
            champion_version=champ_version,
            decision=decision,
            score_date=score_date,
            holdout_as_of_date=as_of_dates[-1],
            candidate=candidate.metrics,
            champion=champ_metrics,
            baselines=baselines,
            run_id=run_id,
        ),
    )
    return TrainResult(
        model_name=name,
        version=version,
        run_id=run_id,
        metrics=candidate.metrics,
        baselines=baselines,
        decision=decision,
        champion_version=champ_version,
        champion_metrics=champ_metrics,
        as_of_dates=as_of_dates,
        lineage=lineage,
    )
