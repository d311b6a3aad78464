"""Helpers for the API tests: a tiny cold-start model in a real MLflow registry, seed data, uvicorn."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
from pymongo import MongoClient

from schemas.coldstart import (
    CATEGORICAL,
    COLDSTART_ARTIFACT_DIR,
    COLDSTART_SUFFIX,
    FEATURE_ORDER,
    MODEL_FILE,
    SPEC_FILE,
    ColdStartSpec,
)
from schemas.serving import PRIORS_COLLECTION_SUFFIX, SYNC_STATE_COLLECTION
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
MODEL = "purchase_30d"
COLDSTART_NAME = MODEL + COLDSTART_SUFFIX
LEVELS = {
    "country": ["US", "DE", "FR"],
    "channel": ["web", "app", "email"],
    "device": ["ios", "android", "desktop"],
}
SEGMENT_PRIORS = {"web": 0.11, "app": 0.22, "email": 0.33}
GLOBAL_PRIOR = 0.05


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def train_booster(*, seed: int, rounds: int = 20) -> lgb.Booster:
    """A tiny LightGBM on synthetic numbers with the cold-start feature order."""
    rng = np.random.default_rng(seed)
    n = 600
    x = np.column_stack(
        [rng.integers(0, 3, n).astype(float) for _ in CATEGORICAL]
        + [rng.uniform(0, 400, n), rng.uniform(0, 300, n), rng.integers(1, 10, n).astype(float)]
    )
    logit = -1.0 + 0.8 * (x[:, 1] == 1) - 0.004 * x[:, 3] + 0.006 * x[:, 4] + seed * 0.3
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 7, "seed": seed}
    data = lgb.Dataset(x, y, feature_name=list(FEATURE_ORDER), categorical_feature=[0, 1, 2])
    return lgb.train(params, data, num_boost_round=rounds)


def register_coldstart(*, tracking_uri: str, artifact_root: Path, seed: int, workdir: Path) -> str:
    """Log model.txt + spec.json under coldstart/ in a run, register it, point champion at it."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name("api-tests")
    exp_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("api-tests", artifact_location=artifact_root.as_uri())
    )
    files = workdir / f"coldstart-{seed}"
    files.mkdir(parents=True, exist_ok=True)
    train_booster(seed=seed).save_model(str(files / MODEL_FILE))
    spec = ColdStartSpec(
        model_name=COLDSTART_NAME,
        categorical_levels=LEVELS,
        segment_field="channel",
        segment_priors=SEGMENT_PRIORS,
        global_prior=GLOBAL_PRIOR,
    )
    (files / SPEC_FILE).write_text(spec.model_dump_json())
    run = client.create_run(exp_id)
    client.log_artifacts(run.info.run_id, str(files), COLDSTART_ARTIFACT_DIR)
    client.set_terminated(run.info.run_id)
    try:
        client.get_registered_model(COLDSTART_NAME)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(COLDSTART_NAME)
    mv = client.create_model_version(
        COLDSTART_NAME, f"runs:/{run.info.run_id}/{COLDSTART_ARTIFACT_DIR}", run_id=run.info.run_id
    )
    client.set_registered_model_alias(COLDSTART_NAME, "champion", mv.version)
    return str(mv.version)


def doc(
    customer_id: str, *, score: float, score_date: dt.date, version: str = "3"
) -> dict[str, Any]:
    return {
        "_id": customer_id,
        "models": {
            MODEL: {
                "score": score,
                "model_version": version,
                "score_date": score_date.isoformat(),
                "scored_at": dt.datetime.combine(score_date, dt.time(3, 0)),
            }
        },
        "delta_version": 1,
        "synced_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }


def seed_mongo(uri: str, *, database: str, n: int = 300) -> dict[str, dict[str, Any]]:
    """Customers C00000.. with fresh scores (even) and stale ones (odd), a prior, a watermark."""
    today = dt.datetime.now(dt.UTC).date()
    docs = {}
    for i in range(n):
        cid = f"C{i:05d}"
        fresh = i % 2 == 0
        docs[cid] = doc(
            cid,
            score=round(0.001 + i / (n * 1.01), 6),
            score_date=today - dt.timedelta(days=1 if fresh else 30),
        )
    docs["C00000"]["models"]["churn_90d"] = {
        "score": 0.9,
        "model_version": "1",
        "score_date": today.isoformat(),
        "scored_at": None,
    }
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        db = client[database]
        db["predictions"].drop()
        db["predictions"].insert_many(list(docs.values()))
        db["predictions" + PRIORS_COLLECTION_SUFFIX].replace_one(
            {"_id": MODEL},
            {"_id": MODEL, "prior": 0.07, "model_version": "3", "delta_version": 1},
            upsert=True,
        )
        set_watermark(client, database=database, version=1)
    finally:
        client.close()
    return docs


def set_watermark(client: MongoClient[dict[str, Any]], *, database: str, version: int) -> None:
    client[database][SYNC_STATE_COLLECTION].replace_one(
        {"_id": "predictions"},
        {
            "_id": "predictions",
            "delta_version": version,
            "mode": "incremental",
            "synced_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        },
        upsert=True,
    )


@dataclass
class ApiProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_api(env: dict[str, str], *, log_path: Path, ready_path: str = "/healthz") -> ApiProcess:
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}{ready_path}", timeout=2).status_code == 200:
                return ApiProcess(proc=proc, url=url, log_path=log_path)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"uvicorn did not start: {log_path.read_text()[-3000:]}")


def api_env(
    *, workdir: Path, mongo_uri: str, database: str, tracking_uri: str, keys: list[str], **api: Any
) -> dict[str, str]:
    env = {
        "MONGO_URI": mongo_uri,
        "LAKESCORE_MONGO__DATABASE": database,
        "LAKESCORE_MLFLOW__TRACKING_URI": tracking_uri,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "LAKESCORE_API__API_KEY_SHA256": json.dumps([sha(k) for k in keys]),
        "LAKESCORE_API__MODEL_CACHE_DIR": str(workdir / "model-cache"),
        "LAKESCORE_API__WATERMARK_POLL_S": "0.2",
        "LAKESCORE_API__MODEL_REFRESH_S": "0.5",
    }
    for key, value in api.items():
        env[f"LAKESCORE_API__{key.upper()}"] = (
            value if isinstance(value, str) else json.dumps(value)
        )
    return env


def wait_until(predicate: Any, *, timeout_s: float = 20.0, every_s: float = 0.1) -> Any:
    """Poll until ``predicate()`` returns something truthy (a condition, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)
