"""Running nights through Dagster from the command line (recorded in the local Dagster instance).

A job run here (``execute_in_process``) does not pass through the instance's run queue,
so its tag limits (``dagster.yaml``) do not apply: the run holds the lease its job's
``lakescore/lease`` tag names instead (``night`` for the nightly job, whatever its
score date: every night writes predictions.current and the serving store). A second
``lakescore night`` or ``backfill`` meanwhile is refused, naming the holder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.output import RunOutput, error_line, shown_path
from schemas.settings import Settings

if TYPE_CHECKING:
    from dagster import AssetKey, ExecuteInProcessResult


class NightFailed(RuntimeError):
    pass


# The instance configuration of the repository (run queue limits), for a home without one.
INSTANCE_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def dagster_home(settings: Settings) -> Path:
    """``$DAGSTER_HOME``, or ``<data_dir>/dagster``: the same instance ``dagster dev`` shows;
    the repository's ``dagster.yaml`` is copied in when the folder has none (one there
    already is the operator's, and stays)."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path(settings.data_dir) / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    if INSTANCE_YAML.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_job(
    settings: Settings,
    *,
    job_name: str,
    partition: dt.date,
    run_config: dict[str, Any] | None = None,
    assets: Sequence[AssetKey] | None = None,
    output: RunOutput | None = None,
    title: str | None = None,
) -> str:
    """Run one partition of a job in this process; return the run id or raise ``NightFailed``
    (``execute_job``)."""
    return str(
        execute_job(
            settings,
            job_name=job_name,
            partition=partition,
            run_config=run_config,
            assets=assets,
            output=output,
            title=title,
        ).run_id
    )


def execute_job(
    settings: Settings,
    *,
    job_name: str,
    partition: dt.date,
    run_config: dict[str, Any] | None = None,
    assets: Sequence[AssetKey] | None = None,
    tags: Mapping[str, str] | None = None,
    output: RunOutput | None = None,
    title: str | None = None,
) -> ExecuteInProcessResult:
    """Run one partition of a job in this process; return its result or raise ``NightFailed``.

    ``assets``: only these assets of the job (with their checks), the others taken as they
    are (a night's scoring and sync again over features already built); under the same lease.
    ``output``: the command line's (``cli.output``): a line per step on the terminal under
    ``title`` (default: job and partition), the run's whole log in ``<data_dir>/logs/<run
    id>.log``, named by the failure's message.
    """
    from dagster import DagsterInstance

    from jobs.platform import LeaseHeldError, default_holder, ensure_local_mongo, leased
    from pipelines.definitions import LEASE_TAG, build_definitions

    dagster_home(settings)
    ensure_local_mongo(settings)
    job = build_definitions(settings).resolve_job_def(job_name)
    lease = job.tags.get(LEASE_TAG)
    holder = f"{default_holder()} lakescore {job_name} {partition}"
    run_id = str(uuid.uuid4())
    try:
        with (
            leased(settings, name=lease, holder=holder) if lease else contextlib.nullcontext(),
            DagsterInstance.get() as instance,
            output.run(run_id, title=title or f"{job_name} {partition}")
            if output
            else contextlib.nullcontext() as lines,
        ):
            if lines is not None:
                instance.add_event_listener(run_id, lines)
            result = job.execute_in_process(
                partition_key=partition.isoformat(),
                run_config=run_config or {},
                instance=instance,
                asset_selection=assets,
                tags=tags,
                run_id=run_id,
                raise_on_error=False,
            )
    except LeaseHeldError as exc:
        raise NightFailed(f"{job_name} {partition} did not start: {exc}") from exc
    if not result.success:
        log = output.log_path(result.run_id) if output else None
        raise NightFailed(failure_message(result, job_name=job_name, partition=partition, log=log))
    return result


def failure_message(
    result: ExecuteInProcessResult, *, job_name: str, partition: dt.date, log: Path | None
) -> str:
    """Which step failed and why (each error's first line), failed checks, whether the
    audit held the night, and where the whole log is."""
    failed = [e for e in result.all_events if e.is_step_failure and e.event_specific_data]
    failures = [
        f"{e.step_key}: {error_line(e.event_specific_data.error.message)}"  # type: ignore[union-attr]
        for e in failed
    ]
    checks = [
        f"check {e.check_name} failed: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    held = held_by_audit(result.get_asset_check_evaluations())
    advice = (
        f" The night is held: predictions.current and MongoDB are unchanged; review with "
        f"`lakescore publish --date {partition} --list`."
        if held
        else ""
    )
    steps = sorted({str(e.step_key) for e in failed})
    where = f" at step {', '.join(steps)}" if steps else ""
    shown = f" Full log: {shown_path(log)}" if log is not None else ""
    why = "; ".join(checks + failures) or "see the Dagster UI"
    return (
        f"{job_name} {partition} failed{where} (Dagster run {result.run_id}): "
        f"{why.rstrip('.')}.{advice}{shown}"
    )


def held_by_audit(evaluations: Sequence[Any]) -> bool:
    """A scoring audit check failed (the night is held); not the freshness check on the same
    asset, which says whether the latest night due by now was written, not whether this
    night's scores may be published (pipelines/freshness.py)."""
    from pipelines.keys import HISTORY_KEY
    from pipelines.scoring.assets import CHECK_NAMES

    return any(
        e.asset_key == HISTORY_KEY and e.check_name in CHECK_NAMES and not e.passed
        for e in evaluations
    )


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def scored_by_champion(settings: Settings, *, dates: Sequence[dt.date]) -> list[dt.date]:
    """The dates of ``dates`` whose champion rows in ``predictions.history`` were all made by
    the version the registry's champion alias names now: a backfill skips them (``--force``
    runs them anyway). The same rule as ``jobs.ops.backfill``, read through delta-rs and
    the MLflow client, without Spark. None before the first champion or the first night."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from jobs.platform import CHAMPION, configure_mlflow, version_by_alias
    from schemas.tables import PREDICTIONS_HISTORY

    if not dates:
        return []
    champion = version_by_alias(
        configure_mlflow(settings), model_name=settings.model.name, alias=CHAMPION
    )
    if champion is None:
        return []
    try:
        table = DeltaTable(settings.table_path(PREDICTIONS_HISTORY.name))
    except TableNotFoundError:
        return []
    rows = table.to_pyarrow_table(
        columns=["score_date", "model_version"],
        filters=[
            ("score_date", "in", list(dates)),
            ("model_name", "=", settings.model.name),
            ("model_role", "=", CHAMPION),
        ],  # type: ignore[arg-type]
    ).to_pylist()
    versions: dict[dt.date, set[str]] = {}
    for row in rows:
        versions.setdefault(row["score_date"], set()).add(str(row["model_version"]))
    return [d for d in dates if versions.get(d) == {str(champion.version)}]
