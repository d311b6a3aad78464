"""The cold-start model in the service: fetched from MLflow by alias, cached on disk, scored on numpy.

Layout of the local cache (``api.model_cache_dir``)::

    <cache>/<registered name>/<version>/model.txt, spec.json
    <cache>/<registered name>/current.json      {"version": "3", "run_id": "..."}

The registry is read in a worker thread (MLflow is synchronous); when it is
unreachable, the last copy on disk is served, so the service starts anyway.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
from lightgbm.basic import LightGBMError
from schemas.coldstart import (
    COLDSTART_ARTIFACT_DIR,
    COLDSTART_SUFFIX,
    MODEL_FILE,
    SPEC_FILE,
    ColdStartContext,
    ColdStartSpec,
    segment_prior,
)
from schemas.serving import Reason

from api.coldstart_scorer import SingleRowContributions, SingleRowScorer, plan_encoder

CHAMPION = "champion"
POINTER_FILE = "current.json"
log = logging.getLogger("lakescore.api.coldstart")


class ModelUnavailableError(RuntimeError):
    """Neither the registry nor the local cache could provide a cold-start model."""


@dataclass(frozen=True, kw_only=True)
class ColdStartModel:
    """One loaded version: the booster, its spec and where it came from."""

    registered_name: str
    version: str
    run_id: str
    spec: ColdStartSpec
    booster: lgb.Booster
    _encode: Callable[[ColdStartContext], list[float]] = field(init=False, repr=False)
    _scorer: Callable[[list[float]], float] = field(init=False, repr=False)
    _fields: tuple[str, ...] = field(init=False, repr=False)
    _contributions: Callable[[list[float]], list[float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Plan the per-request work once: the encoder, and LightGBM's single-row scorer
        (one thread: OpenMP's default fan-out per call cost a p99 of 27 ms under load)."""
        object.__setattr__(self, "_encode", plan_encoder(self.spec))
        try:
            scorer: Callable[[list[float]], float] = SingleRowScorer(
                self.booster, num_features=len(self.spec.feature_order)
            )
        except (LightGBMError, ValueError, AttributeError, OSError) as exc:  # not for this model
            log.info("single-row scorer unavailable (%s): Booster.predict", exc)
            scorer = self._predict
        object.__setattr__(self, "_scorer", scorer)
        try:
            contributions: Callable[[list[float]], list[float]] = SingleRowContributions(
                self.booster, num_features=len(self.spec.feature_order)
            ).contributions
        except (LightGBMError, ValueError, AttributeError, OSError):
            contributions = self._contrib
        object.__setattr__(self, "_contributions", contributions)
        object.__setattr__(self, "_fields", tuple(ColdStartContext.model_fields))

    def _predict(self, row: list[float]) -> float:
        return float(self.booster.predict(np.asarray([row], dtype=np.float64), num_threads=1)[0])

    def _contrib(self, row: list[float]) -> list[float]:
        matrix = np.asarray([row], dtype=np.float64)
        return [float(v) for v in self.booster.predict(matrix, pred_contrib=True)[0]]

    def reasons(self, context: ColdStartContext, *, count: int) -> list[Reason]:
        """The ``count`` largest contributions to the model's score for this context,
        largest first (ties: the spec's feature order), with the request's values."""
        row = self._encode(context)
        phi = self._contributions(row)[: len(row)]
        order = sorted(range(len(row)), key=lambda j: (-abs(phi[j]), j))[:count]
        values = context.__dict__
        out = []
        for j in order:
            name = self.spec.feature_order[j]
            value = values.get(name)
            shown: float | str | None
            shown = value if isinstance(value, str) or value is None else float(value)
            out.append(Reason(feature=name, contribution=phi[j], value=shown))
        return out

    def encode(self, context: ColdStartContext) -> list[float]:
        """``schemas.coldstart.encode(context, self.spec)``, planned once."""
        return self._encode(context)

    def score(self, context: ColdStartContext) -> float:
        """The model's probability for one request, clipped to [0, 1]."""
        score = self._scorer(self._encode(context))
        return 0.0 if score < 0.0 else 1.0 if score > 1.0 else score

    def answer(self, context: ColdStartContext) -> tuple[float, str]:
        """``(score, source)``: the model when the request has inputs, else the segment prior."""
        values = context.__dict__
        if any(values.get(name) is not None for name in self._fields):
            return self.score(context), "coldstart"
        return segment_prior(context, self.spec), "segment_prior"


def registered_name(model_name: str) -> str:
    return f"{model_name}{COLDSTART_SUFFIX}"


def load_from_dir(directory: Path, *, name: str, version: str, run_id: str) -> ColdStartModel:
    spec = ColdStartSpec.model_validate_json((directory / SPEC_FILE).read_text())
    booster = lgb.Booster(model_file=str(directory / MODEL_FILE))
    if booster.num_feature() != len(spec.feature_order):
        raise ModelUnavailableError(
            f"{name} v{version}: model has {booster.num_feature()} features, "
            f"spec lists {len(spec.feature_order)}"
        )
    return ColdStartModel(
        registered_name=name, version=version, run_id=run_id, spec=spec, booster=booster
    )


def load_cached(cache_dir: Path, *, name: str) -> ColdStartModel:
    """The version the pointer file names (the last one fetched from the registry)."""
    pointer = cache_dir / name / POINTER_FILE
    if not pointer.exists():
        raise ModelUnavailableError(f"no cached copy of {name} under {cache_dir}")
    meta = json.loads(pointer.read_text())
    version, run_id = str(meta["version"]), str(meta["run_id"])
    return load_from_dir(cache_dir / name / version, name=name, version=version, run_id=run_id)


def champion_version(*, tracking_uri: str, name: str) -> tuple[str, str]:
    """``(version, run_id)`` the ``champion`` alias points at (raises when unreachable)."""
    _bounded_mlflow_http()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    mv = client.get_model_version_by_alias(name, CHAMPION)
    return str(mv.version), str(mv.run_id)


def fetch(
    *, tracking_uri: str, name: str, cache_dir: Path, known: str | None
) -> ColdStartModel | None:
    """Fetch the champion into the cache when it differs from ``known``; ``None`` when unchanged."""
    version, run_id = champion_version(tracking_uri=tracking_uri, name=name)
    if version == known:
        return None
    target = cache_dir / name / version
    if not (target / MODEL_FILE).exists() or not (target / SPEC_FILE).exists():
        _download(tracking_uri=tracking_uri, run_id=run_id, target=target)
    model = load_from_dir(target, name=name, version=version, run_id=run_id)
    _write_pointer(cache_dir / name, version=version, run_id=run_id)
    return model


def _download(*, tracking_uri: str, run_id: str, target: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        local = Path(client.download_artifacts(run_id, COLDSTART_ARTIFACT_DIR, str(tmp)))
        for required in (MODEL_FILE, SPEC_FILE):
            if not (local / required).exists():
                raise ModelUnavailableError(
                    f"run {run_id} has no {COLDSTART_ARTIFACT_DIR}/{required}"
                )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(local, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_pointer(directory: Path, *, version: str, run_id: str) -> None:
    tmp = directory / f".{POINTER_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"version": version, "run_id": run_id}))
    os.replace(tmp, directory / POINTER_FILE)


def _bounded_mlflow_http() -> None:
    """An unreachable tracking server must fail in seconds, not after minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
