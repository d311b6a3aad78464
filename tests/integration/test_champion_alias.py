"""The champion alias moves only from the version the gate compared against, and two
retrains of one model never race on it (the ``retrain:<model>`` lease).

A real MLflow registry (SQLite) with bare model versions, and the real Mongo-wire
server for the lease. The retrains are ``jobs.ops.retrain.retrain`` with the training
replaced by what matters here: read the champion (what the gate compares against),
take a moment, conclude the gate with a promotion. Every move of the champion alias is
recorded with the version it replaced, and must have replaced the version its gate
compared against.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from pymongo import MongoClient

from jobs.ops import retrain as retrain_module
from jobs.platform import (
    CHALLENGER,
    CHAMPION,
    LEASES_COLLECTION,
    LeaseHeldError,
    configure_mlflow,
    retrain_lease,
    version_by_alias,
)
from jobs.training.gate import GateDecision
from jobs.training.gate_log import set_gate_aliases
from jobs.training.pipeline import TrainResult
from schemas.settings import Settings
from tests.integration.test_score import isolated

pytestmark = pytest.mark.integration

PROMOTE = GateDecision(promote=True, reason="AUC gain interval above the margin")


@pytest.fixture
def registry(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A registry of its own, a model with versions 1..4 (champion: 1), a lease db of its own."""
    own = isolated(settings, tmp_path, model="alias_" + uuid.uuid4().hex[:8])
    own = own.model_copy(
        update={"mongo": own.mongo.model_copy(update={"database": "t_" + uuid.uuid4().hex[:12]})}
    )
    client = configure_mlflow(own)
    client.create_registered_model(own.model.name)
    for _ in range(4):
        client.create_model_version(own.model.name, source=(tmp_path / "m").as_uri())
    client.set_registered_model_alias(own.model.name, CHAMPION, "1")
    yield own
    MongoClient(own.mongo.effective_uri).drop_database(own.mongo.database)


def champion(client: MlflowClient, name: str) -> str | None:
    current = version_by_alias(client, model_name=name, alias=CHAMPION)
    return None if current is None else str(current.version)


def test_the_gate_promotes_when_the_champion_is_still_the_one_it_compared_against(
    registry: Settings,
) -> None:
    client, name = configure_mlflow(registry), registry.model.name
    decision = set_gate_aliases(
        client, model_name=name, version="2", decision=PROMOTE, expected_champion="1"
    )
    assert decision.promote and decision == PROMOTE
    assert champion(client, name) == "2"
    assert version_by_alias(client, model_name=name, alias=CHALLENGER) is None


def test_a_gate_that_compared_against_an_older_champion_does_not_move_the_alias(
    registry: Settings,
) -> None:
    client, name = configure_mlflow(registry), registry.model.name
    # Another retrain promoted v3 after this gate read the champion (v1).
    client.set_registered_model_alias(name, CHAMPION, "3")

    decision = set_gate_aliases(
        client, model_name=name, version="2", decision=PROMOTE, expected_champion="1"
    )

    assert champion(client, name) == "3"
    assert not decision.promote and decision.valid and decision.verdict == "reject"
    assert decision.reason.startswith(
        "not promoted: the champion moved from v1 (what the gate compared against) to v3"
    )
    assert decision.reason.endswith(PROMOTE.reason)
    challenger = version_by_alias(client, model_name=name, alias=CHALLENGER)
    assert challenger is not None and str(challenger.version) == "2"  # still shadow-scored
    assert client.get_model_version(name, "2").tags["gate.verdict"] == "reject"


def test_a_first_model_is_not_promoted_over_a_champion_that_appeared_meanwhile(
    registry: Settings,
) -> None:
    client, name = configure_mlflow(registry), registry.model.name
    decision = set_gate_aliases(
        client, model_name=name, version="2", decision=PROMOTE, expected_champion=None
    )
    assert not decision.promote and "moved from no champion (what the gate" in decision.reason
    assert champion(client, name) == "1"


def test_a_promotion_overwritten_right_after_is_reported(
    registry: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name = configure_mlflow(registry), registry.model.name
    set_alias = MlflowClient.set_registered_model_alias

    def and_then_another_writer(self: MlflowClient, model: str, alias: str, version: str) -> None:
        set_alias(self, model, alias, version)
        if alias == CHAMPION and version == "2":  # a writer without the lease, just after
            set_alias(self, model, CHAMPION, "4")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", and_then_another_writer)
    decision = set_gate_aliases(
        client, model_name=name, version="2", decision=PROMOTE, expected_champion="1"
    )
    assert not decision.promote
    assert decision.reason.startswith("not promoted: the champion was set to v4 right after")
    assert champion(client, name) == "4"


@dataclass
class Moves:
    """Every move of the champion alias: (version set, version it replaced)."""

    lock: threading.Lock
    moves: list[tuple[str, str | None]]
    expected: dict[str, str | None]  # candidate -> the champion its gate compared against
    decisions: dict[str, GateDecision]

    def broken(self) -> list[str]:
        return [
            f"v{new} replaced v{old}, its gate compared against v{self.expected.get(new)}"
            for new, old in self.moves
            if self.expected.get(new) != old
        ]


@contextlib.contextmanager
def racing_retrains(
    registry: Settings, monkeypatch: pytest.MonkeyPatch, *, gap_s: float
) -> Iterator[Moves]:
    """``retrain`` trains by reading the champion, pausing, promoting its own version;
    the alias write is slowed by ``gap_s`` (MLflow's read-check-set window, widened)."""
    name = registry.model.name
    record = Moves(lock=threading.Lock(), moves=[], expected={}, decisions={})
    versions = iter(["2", "3", "4"])
    set_alias = MlflowClient.set_registered_model_alias

    def slow_set(self: MlflowClient, model: str, alias: str, version: str) -> None:
        if alias == CHAMPION:
            time.sleep(gap_s)
            with record.lock:
                record.moves.append((version, champion(self, model)))
                set_alias(self, model, alias, version)
        else:
            set_alias(self, model, alias, version)

    def train(spark: Any, settings: Settings, **kwargs: Any) -> TrainResult:
        client = configure_mlflow(settings)
        with record.lock:
            version = next(versions)
        expected = champion(client, name)  # what the gate compares against
        record.expected[version] = expected
        time.sleep(0.2)  # training
        decision = set_gate_aliases(
            client, model_name=name, version=version, decision=PROMOTE, expected_champion=expected
        )
        record.decisions[version] = decision
        return TrainResult(
            model_name=name,
            version=version,
            run_id="",
            metrics={},
            baselines={},
            decision=decision,
        )

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", slow_set)
    monkeypatch.setattr(retrain_module, "train_model", train)
    yield record


def retrain_in_threads(settings: Settings, n: int) -> list[BaseException | list[str]]:
    barrier = threading.Barrier(n)
    out: list[BaseException | list[str]] = []

    def one() -> None:
        barrier.wait()
        try:
            out.append(
                retrain_module.retrain(
                    None,  # type: ignore[arg-type]
                    settings,
                    score_date=dt.date(1998, 2, 1),
                    models=[settings.model.name],
                    coldstart=False,
                )
            )
        except BaseException as exc:  # handed to the test
            out.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_two_retrains_of_one_model_take_turns_and_each_moves_the_alias_from_what_it_read(
    registry: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = registry.model_copy(
        update={"lease": registry.lease.model_copy(update={"wait_s": 60})}
    )
    with racing_retrains(registry, monkeypatch, gap_s=0.3) as record:
        out = retrain_in_threads(waiting, 3)
    assert all(isinstance(o, list) for o in out), out
    assert not record.broken(), record.broken()
    assert len(record.moves) == 3 and all(d.promote for d in record.decisions.values())
    assert champion(configure_mlflow(registry), registry.model.name) == record.moves[-1][0]
    assert (
        MongoClient(registry.mongo.effective_uri)[registry.mongo.database][
            LEASES_COLLECTION
        ].count_documents({})
        == 0
    )  # every lease released


def test_a_second_retrain_is_refused_while_the_first_holds_the_lease(
    registry: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with racing_retrains(registry, monkeypatch, gap_s=0.5) as record:
        out = retrain_in_threads(registry, 2)
    refused = [o for o in out if isinstance(o, LeaseHeldError)]
    assert len(refused) == 1, out
    assert f"lease '{retrain_lease(registry.model.name)}' is held by " in str(refused[0])
    assert " retrain 1998-02-01 since " in str(refused[0])
    assert not record.broken() and len(record.moves) == 1


def test_the_dagster_model_asset_trains_under_the_models_lease(
    registry: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance

    from pipelines.definitions import RETRAIN_JOB, build_definitions
    from pipelines.keys import CHAMPION_MODEL_KEY
    from pipelines.models import assets as model_assets
    from pipelines.resources import LakescoreResource
    from pipelines.schedules import RETRAIN_RUN_CONFIG

    # The asset reads the settings from the environment: point it at this registry and database.
    monkeypatch.setenv("LAKESCORE_MODEL__NAME", registry.model.name)
    monkeypatch.setenv("LAKESCORE_MONGO__DATABASE", registry.mongo.database)
    from schemas.settings import get_settings

    get_settings.cache_clear()
    seen: list[dict[str, Any] | None] = []

    def train(spark: Any, settings: Settings, day: dt.date) -> tuple[TrainResult, dict[str, Any]]:
        leases = MongoClient(settings.mongo.effective_uri)[settings.mongo.database]
        seen.append(leases[LEASES_COLLECTION].find_one({"_id": retrain_lease(settings.model.name)}))
        client = configure_mlflow(settings)
        run = client.create_run(
            client.get_experiment_by_name(settings.mlflow.experiment).experiment_id
        )
        result = TrainResult(
            model_name=settings.model.name,
            version="2",
            run_id=run.info.run_id,
            metrics={},
            baselines={},
            decision=GateDecision(promote=False, reason="no better"),
        )
        return result, {}

    model = model_assets.MODEL_ASSETS[CHAMPION_MODEL_KEY]
    monkeypatch.setitem(
        model_assets.MODEL_ASSETS, CHAMPION_MODEL_KEY, dataclasses.replace(model, train=train)
    )
    try:
        resource = LakescoreResource(
            mlflow_tracking_uri=registry.mlflow.tracking_uri,
            mlflow_artifact_root=registry.mlflow.artifact_root,
        )
        job = build_definitions(get_settings(), resource=resource).resolve_job_def(RETRAIN_JOB)
        with DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                partition_key="1998-02-01", run_config=RETRAIN_RUN_CONFIG, instance=instance
            )
    finally:
        get_settings.cache_clear()
    assert result.success
    [lease] = seen
    assert lease is not None, "the model trained without its lease"
    assert f"dagster run {result.run_id} models/champion" in lease["holder"]
    released = MongoClient(registry.mongo.effective_uri)[registry.mongo.database]
    assert released[LEASES_COLLECTION].count_documents({}) == 0
