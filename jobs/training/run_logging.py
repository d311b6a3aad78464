"""One MLflow run per candidate: params, metrics, plots, lineage, the candidate's own
artifacts, and the registered model."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import mlflow

from jobs.training.bootstrap import Comparison
from jobs.training.calibration import reliability_curve
from jobs.training.candidate import Candidate
from jobs.training.evaluation import calibration_plot_png, feature_importance
from jobs.training.trainset import Lineage, TrainingData
from schemas.settings import Settings

_TASK_PARAMS = {
    "binary": {"class_imbalance": "none (unweighted log loss keeps probabilities calibrated)"},
    "regression": {},
}
RELIABILITY_ARTIFACT = "evaluation/reliability_curve.json"
_PRIOR_METRIC = {"binary": "train_base_rate", "regression": "train_mean_label"}


def git_commit() -> str:
    """The code commit training ran from (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def lineage_tags(lineage: list[Lineage]) -> dict[str, str]:
    """``lineage.<table>.path|version|rows``: read back with ``versionAsOf`` to reproduce training."""
    tags: dict[str, str] = {}
    for item in lineage:
        tags[f"lineage.{item.table}.path"] = item.path
        tags[f"lineage.{item.table}.version"] = str(item.version)
        tags[f"lineage.{item.table}.rows"] = str(item.rows)
    return tags


def log_candidate_run(
    settings: Settings,
    *,
    candidate: Candidate,
    baselines: dict[str, dict[str, float]],
    data: TrainingData,
    comparison: Comparison | None,
) -> tuple[str, str]:
    """Log everything about the candidate and register it; returns ``(run_id, version)``."""
    definition = candidate.definition
    score_date = data.split.score_date
    features = definition.feature_names
    y_hold = candidate.holdout["label"].to_numpy(float)
    with mlflow.start_run(run_name=f"{definition.name}-{score_date.isoformat()}") as run:
        mlflow.log_params(
            {
                **candidate.params,
                "label": definition.label,
                "horizon_days": definition.horizon_days,
                "score_date": score_date.isoformat(),
                "best_iteration": candidate.booster.current_iteration(),
                "task": definition.task,
                "features": ",".join(features),
                **_TASK_PARAMS[definition.task],
            }
        )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in candidate.metrics.items()})
        mlflow.log_metric(_PRIOR_METRIC[definition.task], candidate.train_base_rate)
        for name, metrics in baselines.items():
            mlflow.log_metrics({f"baseline_{name}_{k}": v for k, v in metrics.items()})
        if comparison is not None:
            mlflow.log_metrics(comparison.metrics())
        mlflow.log_metrics(candidate.learning_curve)
        calibration = candidate.calibration
        if calibration is not None:
            mlflow.log_param("calibration_method", calibration.method)
            mlflow.set_tag("calibration.reason", calibration.reason)
            mlflow.log_metrics(calibration.metrics())
            mlflow.log_dict(
                {"holdout": reliability_curve(y_hold, candidate.scores)}, RELIABILITY_ARTIFACT
            )
        mlflow.set_tags(
            {
                **lineage_tags(data.lineage),
                **data.split.describe(),
                **(data.sample.describe() if data.sample else {}),
                "training.rows": str(len(data.frame)),
                "model.definition": definition.name,
                "code.commit": git_commit(),
            }
        )
        mlflow.log_dict(definition.model_dump(mode="json"), "config/definition.json")
        mlflow.log_dict(settings.model.model_dump(mode="json"), "config/model.json")
        mlflow.log_dict(settings.gate.model_dump(mode="json"), "config/gate.json")
        importance = feature_importance(candidate.booster)
        mlflow.log_text(importance.to_csv(index=False), "evaluation/feature_importance.csv")
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "calibration.png"
            png.write_bytes(
                calibration_plot_png(y_hold, candidate.scores, title=f"{definition.name} holdout")
            )
            mlflow.log_artifact(str(png), "evaluation")
        for path, text in candidate.artifacts.items():
            mlflow.log_text(text, path)
        info = mlflow.lightgbm.log_model(
            candidate.booster,
            name="model",
            signature=candidate.signature,
            input_example=candidate.inputs.head(3).astype("float64"),
            registered_model_name=definition.name,
        )
        version = str(info.registered_model_version)
    return run.info.run_id, version
