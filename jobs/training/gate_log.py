"""Every gate decision, recorded twice: on the candidate's MLflow run and in ``models.gate_decisions``.

The champion alias moves only from the version the gate compared against
(``set_gate_aliases``, ``expected_champion``). MLflow has no conditional alias update,
so it is read, checked, set and read again: under the ``retrain:<model>`` lease that
every retrain holds (jobs/ops/retrain.py, the Dagster model assets) no other retrain
can move it in between. What remains is a writer without the lease (a rollback, a
person in the MLflow UI) setting the alias in the milliseconds between the check and
the set: the read after the set catches it when that writer came second, not when it
came first (then its version is replaced by this one, gated against the one before).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, replace

from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from jobs.platform import CHALLENGER, CHAMPION, ensure_table, table_path, version_by_alias
from jobs.training.gate import GateDecision
from schemas.settings import Settings
from schemas.tables import GATE_DECISIONS


@dataclass(frozen=True, kw_only=True)
class DecisionRecord:
    model_name: str
    candidate_version: str
    champion_version: str | None
    decision: GateDecision
    score_date: dt.date
    holdout_as_of_date: dt.date
    candidate: dict[str, float]
    champion: dict[str, float] | None
    baselines: dict[str, dict[str, float]]
    run_id: str
    # Binary models: what calibration did and the holdout's reliability curve.
    calibration: dict[str, object] | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "model_name": self.model_name,
            "candidate_version": self.candidate_version,
            "champion_version": self.champion_version,
            "verdict": self.decision.verdict,
            "promoted": self.decision.promote,
            "reason": self.decision.reason,
            "score_date": self.score_date.isoformat(),
            "holdout_as_of_date": self.holdout_as_of_date.isoformat(),
            "candidate": self.candidate,
            "champion": self.champion,
            "baselines": self.baselines,
            "comparison": (
                None if self.decision.comparison is None else self.decision.comparison.as_json()
            ),
            "calibration": self.calibration,
        }


def _num(metrics: dict[str, float] | None, key: str) -> float | None:
    value = None if metrics is None else metrics.get(key)
    return None if value is None or math.isnan(value) else float(value)


def decision_row(record: DecisionRecord, *, decided_at: dt.datetime) -> dict[str, object]:
    """The ``models.gate_decisions`` row of one decision (pure)."""
    cand, champ = record.candidate, record.champion
    prior = record.baselines.get("prior")
    rf = record.baselines.get("recency_frequency")
    return {
        "decided_at": decided_at,
        "model_name": record.model_name,
        "candidate_version": record.candidate_version,
        "champion_version": record.champion_version,
        "verdict": record.decision.verdict,
        "promoted": record.decision.promote,
        "reason": record.decision.reason,
        "score_date": record.score_date,
        "holdout_as_of_date": record.holdout_as_of_date,
        "holdout_rows": int(cand.get("rows", 0)),
        "candidate_roc_auc": _num(cand, "roc_auc"),
        "candidate_log_loss": _num(cand, "log_loss"),
        "candidate_lift_top_decile": _num(cand, "lift_top_decile"),
        "champion_roc_auc": _num(champ, "roc_auc"),
        "champion_log_loss": _num(champ, "log_loss"),
        "champion_lift_top_decile": _num(champ, "lift_top_decile"),
        "baseline_prior_roc_auc": _num(prior, "roc_auc"),
        "baseline_recency_frequency_roc_auc": _num(rf, "roc_auc"),
        "baseline_recency_frequency_lift_top_decile": _num(rf, "lift_top_decile"),
        "mlflow_run_id": record.run_id,
        "metrics_json": json.dumps(record.as_json(), sort_keys=True, default=str),
    }


def record_decision(
    spark: SparkSession, settings: Settings, client: MlflowClient, record: DecisionRecord
) -> None:
    """Tag and attach the decision to the candidate's run, then append it to the Delta table."""
    tags = {
        "gate.verdict": record.decision.verdict,
        "gate.reason": record.decision.reason[:4000],
        "gate.champion_version": record.champion_version or "",
    }
    for key, value in tags.items():
        client.set_tag(record.run_id, key, value)
    client.log_dict(record.run_id, record.as_json(), "gate/decision.json")
    row = decision_row(record, decided_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    ensure_table(spark, settings, GATE_DECISIONS)
    frame = spark.createDataFrame([row], GATE_DECISIONS.ddl).coalesce(1)
    frame.write.format("delta").mode("append").save(table_path(settings, GATE_DECISIONS))


def conclude_gate(
    spark: SparkSession, settings: Settings, client: MlflowClient, record: DecisionRecord
) -> GateDecision:
    """Act on a gate decision (aliases) and record it (MLflow run, Delta table); the decision
    acted on (not promoted after all when the champion moved since the gate read it)."""
    decision = set_gate_aliases(
        client,
        model_name=record.model_name,
        version=record.candidate_version,
        decision=record.decision,
        expected_champion=record.champion_version,
    )
    record_decision(spark, settings, client, replace(record, decision=decision))
    return decision


def _champion(client: MlflowClient, model_name: str) -> str | None:
    current = version_by_alias(client, model_name=model_name, alias=CHAMPION)
    return None if current is None else str(current.version)


def _named(version: str | None) -> str:
    return "no champion" if version is None else f"v{version}"


def set_gate_aliases(
    client: MlflowClient,
    *,
    model_name: str,
    version: str,
    decision: GateDecision,
    expected_champion: str | None,
) -> GateDecision:
    """Aliases after a gate decision; the decision acted on.

    valid -> ``challenger`` (shadow-scored by the nightly job); promoted -> ``champion``
    (and no separate challenger), but only when the champion is still
    ``expected_champion``, the version the gate compared against: otherwise the candidate
    is not promoted (it stays challenger) and the returned decision says why. An invalid
    model gets no alias at all and a ``validation=failed`` tag, so nothing ever scores with it.
    """
    if not decision.valid:
        client.set_model_version_tag(model_name, version, "validation", "failed")
        client.set_model_version_tag(
            model_name, version, "validation.reason", decision.reason[:4000]
        )
        return decision
    client.set_model_version_tag(model_name, version, "validation", "passed")
    if decision.promote:
        current = _champion(client, model_name)
        if current == expected_champion:
            client.set_registered_model_alias(model_name, CHAMPION, version)
            after = _champion(client, model_name)
            if after == version:
                client.delete_registered_model_alias(model_name, CHALLENGER)
                client.set_model_version_tag(model_name, version, "gate.verdict", decision.verdict)
                return decision
            reason = (
                f"not promoted: the champion was set to {_named(after)} right after this "
                f"promotion, by another writer"
            )
        else:
            reason = (
                f"not promoted: the champion moved from {_named(expected_champion)} (what the "
                f"gate compared against) to {_named(current)} before the alias was set"
            )
        decision = replace(decision, promote=False, reason=f"{reason}; the gate: {decision.reason}")
    client.set_model_version_tag(model_name, version, "gate.verdict", decision.verdict)
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    return decision
