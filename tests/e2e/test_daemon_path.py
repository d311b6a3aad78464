"""The night the way a deployment runs it: schedule tick, run queue, daemon, run worker.

Against a real Dagster instance in a DAGSTER_HOME of its own, with the repository's
``dagster.yaml`` (the run queue and its limit of one run per ``lakescore/lease`` value):

1. The scheduler's own iteration (``launch_scheduled_runs``, the loop ``dagster-daemon``
   runs) evaluates the nightly schedule at 02:00 of SCORE_DATE: the end of the iteration is
   an argument, so the tick is of 1997, not of the wall clock. It submits the run to the
   instance's run queue, where it waits: no daemon is running yet.
2. A ``dagster-daemon run`` subprocess (workspace: ``pipelines.definitions``) dequeues it and
   launches it with the default run launcher: a run worker subprocess of its code server.
   Every asset of the nightly job is materialized for the partition (the instance's event
   log), the steps ran in the run worker's process (the in-process executor), and MongoDB
   holds the night's predictions.
3. A backfill of three partitions of the nightly job, launched with the mutation the UI's
   launchpad sends (``launchPartitionBackfill``); the daemon's backfill iteration submits
   its runs to the queue and the queue runs them one at a time, oldest first (start and end
   timestamps of the runs' records).
4. ``lakescore night`` on the same data in stores of its own, for the wall time against the
   daemon's night (printed, never asserted).

The daemon's own schedules and sensors are switched off (``schedule.enabled=false`` in its
environment): its scheduler ticks on the wall clock, and a sensor could start a retrain in
the middle of the backfill. The stores (data dir, lake, MLflow, Mongo-wire server, Dagster
home) are this module's own, passed to the daemon, its code server and the run workers
through the environment; the Spark settings are the e2e fixtures' cheapest (``local[2]``,
2 shuffle partitions, 2 GB driver).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable as RustDeltaTable
from pymongo import MongoClient

from jobs.sync.state import served_collection
from tests.conftest import free_port
from tests.e2e.conftest import SCORE_DATE

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
LOCATION = "lakescore"
NIGHT_CRON = "0 2 * * *"  # the nightly schedule of this module's settings (UTC)
TICK = dt.datetime.combine(SCORE_DATE, dt.time(2, 0), tzinfo=dt.UTC)
BACKFILL = [SCORE_DATE + dt.timedelta(days=i) for i in (1, 2, 3)]
RUN_TIMEOUT_S = 1200.0
# Variables of the calling environment that would change the settings of the runs.
_INHERITED = ("MONGO_URI", "MLFLOW_TRACKING_URI", "SPARK_MASTER", "DAGSTER_HOME")


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def stores_env(root: Path, mongo_uri: str) -> dict[str, str]:
    """The calling environment without lakescore settings, plus stores under ``root`` and
    the e2e fixtures' Spark settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LAKESCORE_") and k not in _INHERITED
    }
    env.update(
        {
            "DAGSTER_HOME": str(root / "dagster"),
            "LAKESCORE_DATA_DIR": str(root / "data"),
            "LAKESCORE_LAKE__ROOT": str(root / "lake"),
            "LAKESCORE_MLFLOW__TRACKING_URI": f"sqlite:///{root}/mlflow/mlflow.db",
            "LAKESCORE_MLFLOW__ARTIFACT_ROOT": str(root / "mlflow" / "artifacts"),
            "LAKESCORE_SPARK__MASTER": "local[2]",
            "LAKESCORE_SPARK__SHUFFLE_PARTITIONS": "2",
            "LAKESCORE_SPARK__DRIVER_MEMORY": "2g",
            "LAKESCORE_SCHEDULE__NIGHTLY_CRON": NIGHT_CRON,
            "LAKESCORE_SCHEDULE__TIMEZONE": "UTC",
            "MONGO_URI": mongo_uri,
            "GX_ANALYTICS_ENABLED": "False",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
            "COLUMNS": "200",
        }
    )
    return env


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """This process's environment replaced by ``env`` (the code server a workspace starts
    inherits it), the settings cache cleared on the way in and out."""
    from schemas.settings import get_settings

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


@contextlib.contextmanager
def mongo_server(root: Path) -> Iterator[str]:
    from jobs.platform.local_mongo import start_server

    port = free_port()
    proc = start_server(port=port, storage_path=":memory:", log_path=root / "mongo.log")
    try:
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Deployment:
    root: Path
    env: dict[str, str]  # the test side: the scheduler iteration's code server, the readers
    daemon_env: dict[str, str]
    workspace: Path
    settings: Any
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    def start_daemon(self) -> None:
        with self.daemon_log.open("ab") as log:
            self.daemon = subprocess.Popen(
                [_bin("dagster-daemon"), "run", "-w", str(self.workspace)],
                env=self.daemon_env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its code server and run workers in its group
            )

    def stop_daemon(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.daemon.pid, signal.SIGTERM)
        try:
            self.daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.daemon.pid, signal.SIGKILL)
            self.daemon.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return self.daemon_log.read_text(errors="replace")[-chars:]


def write_workspace(root: Path) -> Path:
    path = root / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: pipelines.definitions\n"
        f"      working_directory: {REPO}\n"
        f"      location_name: {LOCATION}\n"
    )
    return path


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    # Outside pytest's temporary folders: other test sessions of the same user prune those.
    root = Path(tempfile.mkdtemp(prefix="lakescore-daemon-"))
    with mongo_server(root) as mongo_uri:
        env = stores_env(root, mongo_uri)
        home = Path(env["DAGSTER_HOME"])
        home.mkdir(parents=True)
        shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
        # The test side evaluates the nightly schedule only; the daemon evaluates none.
        env.update(
            {
                "LAKESCORE_SCHEDULE__RETRAIN_ENABLED": "false",
                "LAKESCORE_SCHEDULE__MAINTENANCE_ENABLED": "false",
                "LAKESCORE_SCHEDULE__SENSORS_ENABLED": "false",
            }
        )
        daemon_env = {**env, "LAKESCORE_SCHEDULE__ENABLED": "false"}
        with environment(env):
            from schemas.settings import Settings

            settings = Settings()
        dep = Deployment(
            root=root,
            env=env,
            daemon_env=daemon_env,
            workspace=write_workspace(root),
            settings=settings,
        )
        try:
            yield dep
        finally:
            dep.stop_daemon()
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def instance_and_workspace(dep: Deployment) -> Iterator[tuple[Any, Any]]:
    """The deployment's instance and a workspace on its definitions (a code server started
    from this process, with the test side's environment)."""
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with (
        environment(dep.env),
        DagsterInstance.from_config(str(dep.home)) as instance,
        WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(dep.workspace)])) as ctx,
    ):
        yield instance, ctx


def wait_for_runs(
    dep: Deployment, instance: Any, run_filter: Any, count: int, timeout_s: float = RUN_TIMEOUT_S
) -> list[Any]:
    """The records of ``count`` runs matching ``run_filter``, once all of them have ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = instance.get_run_records(filters=run_filter)
        if len(records) >= count and all(r.dagster_run.is_finished for r in records):
            return sorted(records, key=lambda r: r.create_timestamp)
        if dep.daemon is not None and dep.daemon.poll() is not None:
            pytest.fail(f"dagster-daemon exited ({dep.daemon.returncode}):\n{dep.log_tail()}")
        if time.monotonic() > deadline:
            states = [(r.dagster_run.run_id, r.dagster_run.status.value) for r in records]
            pytest.fail(f"runs not finished after {timeout_s:.0f} s: {states}\n{dep.log_tail()}")
        time.sleep(2)


def step_failures(instance: Any, run_id: str) -> str:
    from dagster import DagsterEventType

    out = []
    for kind in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
        for record in instance.all_logs(run_id, of_type=kind):
            event = record.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            out.append(f"{event.step_key if event else ''}: {error.message if error else ''}")
    return "\n".join(out)


def nightly_asset_keys(dep: Deployment) -> set[Any]:
    from pipelines.definitions import NIGHTLY_JOB, build_definitions

    job = build_definitions(dep.settings).resolve_job_def(NIGHTLY_JOB)
    return set(job.asset_layer.selected_asset_keys)


def materialized(instance: Any, keys: set[Any], partition: str, run_id: str) -> set[Any]:
    """The asset keys the instance's event log holds a materialization of ``partition`` for,
    written by ``run_id``."""
    from dagster import AssetRecordsFilter

    done = set()
    for key in keys:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=10
        )
        if any(r.run_id == run_id for r in result.records):
            done.add(key)
    return done


def in_process_pids(instance: Any, run_id: str) -> set[int]:
    """The pids the in-process executor's engine events name ("Executing steps in process")."""
    from dagster import DagsterEventType

    pids = set()
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        message = record.dagster_event.message if record.dagster_event else ""
        if message and message.startswith("Executing steps in process (pid: "):
            pids.add(int(message.split("pid: ", 1)[1].split(")", 1)[0]))
    return pids


def mongo_score_dates(dep: Deployment) -> dict[str, int]:
    """Documents per score date of the primary model in the deployment's serving store."""
    settings = dep.settings
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo.effective_uri)
    try:
        coll = served_collection(client, settings)
        field = f"$models.{settings.model.name}.score_date"
        return {
            str(row["_id"]): row["n"]
            for row in coll.aggregate([{"$group": {"_id": field, "n": {"$sum": 1}}}])
        }
    finally:
        client.close()


def current_rows(dep: Deployment) -> int:
    from jobs.platform.lake import table_path
    from schemas.tables import PREDICTIONS_CURRENT

    table = RustDeltaTable(table_path(dep.settings, PREDICTIONS_CURRENT))
    return int(table.to_pyarrow_table(columns=["customer_id"]).num_rows)


@dataclass(frozen=True)
class ScheduledNight:
    run_id: str
    queued_status: str
    submitted_at: float
    record: Any


@pytest.fixture(scope="module")
def scheduled_night(deployment: Deployment) -> ScheduledNight:
    import dagster._daemon  # noqa: F401  (before the scheduler: their imports are circular)
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._scheduler.scheduler import launch_scheduled_runs

    logger = logging.getLogger("lakescore.tests.scheduler")
    with instance_and_workspace(deployment) as (instance, ctx):
        # The first iteration records the schedule (RUNNING by default) as started a minute
        # before the tick; the second is the iteration just after 02:00, which evaluates the
        # tick and submits its run.
        for end in (TICK - dt.timedelta(minutes=1), TICK + dt.timedelta(seconds=30)):
            errors = [e for e in launch_scheduled_runs(ctx, logger, end, {}) if e is not None]
            assert not errors, errors
        submitted_at = time.time()
        [run] = instance.get_runs(
            filters=RunsFilter(tags={"dagster/schedule_name": "nightly_schedule"})
        )
        queued = run.status
        assert queued == DagsterRunStatus.QUEUED, queued  # in the queue: no daemon yet
        deployment.start_daemon()
        [record] = wait_for_runs(deployment, instance, RunsFilter(run_ids=[run.run_id]), 1)
    return ScheduledNight(
        run_id=run.run_id, queued_status=queued.value, submitted_at=submitted_at, record=record
    )


def test_the_scheduled_night_runs_through_the_queue_and_the_daemon(
    deployment: Deployment, scheduled_night: ScheduledNight
) -> None:
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    run = scheduled_night.record.dagster_run
    with DagsterInstance.from_config(str(deployment.home)) as instance:
        failures = step_failures(instance, run.run_id)
        assert run.status == DagsterRunStatus.SUCCESS, f"{failures}\n{deployment.log_tail()}"
        assert run.tags["dagster/partition"] == SCORE_DATE.isoformat()
        assert run.tags["dagster/schedule_name"] == "nightly_schedule"
        assert run.tags["lakescore/lease"] == "night"
        kinds = [
            r.dagster_event.event_type
            for r in instance.all_logs(run.run_id)
            if r.dagster_event is not None
        ]
        # Through the queue (enqueued by the scheduler), then launched by the daemon's queue
        # iteration (starting) and executed by a run worker (start, success).
        order = [
            DagsterEventType.RUN_ENQUEUED,
            DagsterEventType.RUN_STARTING,
            DagsterEventType.RUN_START,
            DagsterEventType.RUN_SUCCESS,
        ]
        assert all(kind in kinds for kind in order), [k for k in order if k not in kinds]
        assert [kinds.index(kind) for kind in order] == sorted(kinds.index(k) for k in order)
        # Every step in one process: the run worker's, neither this one nor the daemon's.
        [pid] = in_process_pids(instance, run.run_id)
        assert deployment.daemon is not None
        assert pid not in (os.getpid(), deployment.daemon.pid)
        keys = nightly_asset_keys(deployment)
        assert len(keys) >= 10
        done = materialized(instance, keys, SCORE_DATE.isoformat(), run.run_id)
        assert done == keys, sorted(k.to_user_string() for k in keys - done)


def test_the_scheduled_night_is_in_mongo(
    deployment: Deployment, scheduled_night: ScheduledNight
) -> None:
    assert scheduled_night.record.dagster_run.is_success
    per_date = mongo_score_dates(deployment)
    rows = current_rows(deployment)
    assert rows > 20_000  # CDNOW: 23,570 customers ordered before the score date
    assert per_date == {SCORE_DATE.isoformat(): rows}


@pytest.fixture(scope="module")
def backfill_runs(deployment: Deployment, scheduled_night: ScheduledNight) -> list[Any]:
    """The runs of a three-partition backfill of the nightly job, launched as the UI's
    launchpad launches it, in their creation order."""
    from dagster import RunsFilter
    from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
    from dagster_graphql.test.utils import execute_dagster_graphql

    from pipelines.definitions import NIGHTLY_JOB

    assert scheduled_night.record.dagster_run.is_success
    with instance_and_workspace(deployment) as (instance, ctx):
        result = execute_dagster_graphql(
            ctx.create_request_context(),
            LAUNCH_PARTITION_BACKFILL_MUTATION,
            variables={
                "backfillParams": {
                    "selector": {
                        "repositorySelector": {
                            "repositoryLocationName": LOCATION,
                            "repositoryName": "__repository__",
                        },
                        "partitionSetName": f"{NIGHTLY_JOB}_partition_set",
                    },
                    "partitionNames": [d.isoformat() for d in BACKFILL],
                }
            },
        )
        assert not result.errors, result.errors
        launched = result.data["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        return wait_for_runs(
            deployment,
            instance,
            RunsFilter(tags={"dagster/backfill": backfill_id}),
            len(BACKFILL),
            timeout_s=RUN_TIMEOUT_S * len(BACKFILL),
        )


def test_the_backfill_runs_one_night_at_a_time_oldest_first(backfill_runs: list[Any]) -> None:
    assert len(backfill_runs) == len(BACKFILL)
    by_start = sorted(backfill_runs, key=lambda r: r.start_time or float("inf"))
    assert all(r.start_time is not None and r.end_time is not None for r in by_start), [
        (r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status.value) for r in by_start
    ]
    spans = [(r.dagster_run.tags["dagster/partition"], r.start_time, r.end_time) for r in by_start]
    for (first, _, end), (second, start, _) in itertools.pairwise(spans):
        assert end <= start, f"{first} ran until {end:.1f}, {second} started at {start:.1f}"
    assert [partition for partition, _, _ in spans] == [d.isoformat() for d in BACKFILL]


def test_every_backfilled_night_succeeds_and_the_newest_is_served(
    deployment: Deployment, backfill_runs: list[Any]
) -> None:
    from dagster import DagsterInstance

    keys = nightly_asset_keys(deployment)
    with DagsterInstance.from_config(str(deployment.home)) as instance:
        for record in backfill_runs:
            run = record.dagster_run
            partition = run.tags["dagster/partition"]
            assert run.is_success, f"{partition}: {step_failures(instance, run.run_id)}"
            assert run.tags["lakescore/lease"] == "night"
            done = materialized(instance, keys, partition, run.run_id)
            assert done == keys, (partition, sorted(k.to_user_string() for k in keys - done))
    assert mongo_score_dates(deployment) == {BACKFILL[-1].isoformat(): current_rows(deployment)}


def test_the_daemon_night_against_lakescore_night(
    deployment: Deployment,
    scheduled_night: ScheduledNight,
    backfill_runs: list[Any],
    request: pytest.FixtureRequest,
) -> None:
    """``lakescore night`` for the same date on the same data, in fresh stores of its own
    (the same work: the first champion is trained on the spot). Wall seconds printed."""
    deployment.stop_daemon()  # nothing else on the machine's two cores meanwhile
    root = Path(tempfile.mkdtemp(prefix="lakescore-cli-night-"))
    try:
        with mongo_server(root) as mongo_uri:
            env = stores_env(root, mongo_uri)
            began = time.perf_counter()
            proc = subprocess.run(
                [_bin("lakescore"), "night", "--date", SCORE_DATE.isoformat()],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
            )
            cli_s = time.perf_counter() - began
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    night = scheduled_night.record
    figures = {
        "lakescore night (process start to exit)": cli_s,
        "daemon night (queued to run end, daemon start included)": night.end_time
        - scheduled_night.submitted_at,
        "daemon night (run worker: run start to end)": night.end_time - night.start_time,
        **{
            f"daemon backfill {r.dagster_run.tags['dagster/partition']} (run start to end)": (
                r.end_time - r.start_time
            )
            for r in backfill_runs
        },
    }
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nnight of {SCORE_DATE}, wall seconds:")
        for name, seconds in figures.items():
            print(f"  {seconds:7.1f}  {name}")
