"""``lakescore``: the command line for everyday work (``lakescore --help``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import EXIT_CODES_HELP, EXIT_USAGE, fail, load_settings
from cli.errors import out as console
from cli.history import history as history_command
from cli.output import RunOutput
from cli.publish import publish as publish_command
from cli.runs import NightFailed, date_range, run_job
from cli.sql import sql as sql_command
from schemas.settings import Settings

app = typer.Typer(
    help="lakescore: nightly customer scoring on Delta Lake, served over HTTP.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

DateOpt = Annotated[
    dt.datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="Score date (YYYY-MM-DD).")
]


def _settings() -> Settings:
    return load_settings()


def _fail(message: str, *, code: int = 1) -> typer.Exit:
    return fail(message, code=code)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.out(f"lakescore {version('lakescore')}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """lakescore: nightly customer scoring on Delta Lake, served over HTTP."""


VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", help="Print every log line (Dagster, Spark) as well, not only one per step."
    ),
]


@app.command()
def night(date: DateOpt, verbose: VerboseOpt = False) -> None:
    """Run one night through Dagster: ingest, features, contract, champion, score, sync.

    Prints a line per step; the whole log goes to <data_dir>/logs/<run id>.log."""
    from pipelines.definitions import NIGHTLY_JOB

    settings = _settings()
    try:
        with RunOutput(settings, console=console, verbose=verbose) as out:
            run_job(
                settings,
                job_name=NIGHTLY_JOB,
                partition=date.date(),
                output=out,
                title=f"night {date.date()}",
            )
    except NightFailed as exc:
        raise _fail(str(exc)) from exc


@app.command()
def backfill(
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First score date.")],
    end: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Last score date.")],
    step_days: Annotated[int, typer.Option(min=1, help="Days between score dates.")] = 1,
    force: Annotated[
        bool, typer.Option(help="Also run the dates the current champion already scored.")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the nightly job through Dagster for every score date from start to end
    (inclusive, every --step-days), oldest first, skipping the dates whose champion scores
    in predictions.history were all made by the current champion version (--force: run
    them too).

    Prints a line per step of each night; each night's whole log goes to
    <data_dir>/logs/<run id>.log."""
    from cli.runs import scored_by_champion
    from pipelines.definitions import NIGHTLY_JOB

    settings = _settings()
    try:
        wanted = date_range(start.date(), end.date())[::step_days]
    except ValueError as exc:
        raise _fail(str(exc), code=EXIT_USAGE) from exc
    skipped = [] if force else scored_by_champion(settings, dates=wanted)
    dates = [d for d in wanted if d not in skipped]
    if skipped:
        console.print(
            f"skipped {len(skipped)} of {len(wanted)} dates the current champion already "
            f"scored ({skipped[0]} .. {skipped[-1]}; --force to run them)"
        )
    if not dates:
        console.print("[green]backfill done:[/green] nothing to run")
        return
    day = dates[0]
    try:
        with RunOutput(settings, console=console, verbose=verbose) as out:
            for n, day in enumerate(dates, start=1):
                run_job(
                    settings,
                    job_name=NIGHTLY_JOB,
                    partition=day,
                    output=out,
                    title=f"night {day} ({n}/{len(dates)})",
                )
    except NightFailed as exc:
        raise _fail(f"backfill stopped at {day}: {exc}") from exc
    console.print(
        f"[green]backfill done:[/green] {len(dates)} nights from {dates[0]} to {dates[-1]}"
    )


@app.command()
def train(date: DateOpt) -> None:
    """Train a challenger for the score date; the gate decides whether it becomes champion."""
    from pipelines.definitions import RETRAIN_JOB
    from pipelines.schedules import RETRAIN_RUN_CONFIG

    try:
        run_job(
            _settings(), job_name=RETRAIN_JOB, partition=date.date(), run_config=RETRAIN_RUN_CONFIG
        )
    except NightFailed as exc:
        raise _fail(str(exc)) from exc
    console.print("[green]training done[/green]: see `lakescore status` for the champion")


@app.command()
def sync(
    full: Annotated[
        bool, typer.Option(help="Rebuild the collection and point readers at it.")
    ] = False,
) -> None:
    """Sync predictions.current into MongoDB (incremental or blue/green, chosen by what changed)."""
    from jobs.platform import ensure_local_mongo, get_spark
    from jobs.sync import SyncError
    from jobs.sync import sync as run_sync

    settings = _settings()
    ensure_local_mongo(settings)
    try:
        result = run_sync(get_spark(settings), settings, mode="full" if full else "auto")
    except SyncError as exc:
        raise _fail(f"sync failed: {exc}") from exc
    console.print(f"[green]synced[/green] {result}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the lookup API (starts the local Mongo-wire server when no MONGO_URI is set)."""
    import uvicorn

    from jobs.platform import ensure_local_mongo

    settings = _settings()
    ensure_local_mongo(settings)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        access_log=False,
    )


@app.command()
def rollback(
    to_version: Annotated[str, typer.Option(help="The model version to make champion again.")],
    model: Annotated[
        str | None,
        typer.Option(help="The configured model to roll back (default: the primary model)."),
    ] = None,
) -> None:
    """Undo a bad model: its rows of predictions.current restored, alias back, full Mongo resync.

    Only that model's rows change; every other model's rows stay as they are.
    """
    from jobs.ops import RollbackError
    from jobs.ops import rollback as do_rollback
    from jobs.platform import ensure_local_mongo, get_spark

    settings = _settings()
    ensure_local_mongo(settings)
    try:
        result = do_rollback(
            get_spark(settings), settings, good_version=to_version, model_name=model
        )
    except RollbackError as exc:
        raise _fail(f"rollback refused: {exc}") from exc
    if result.source == "current":
        origin = f"restored from predictions.current version {result.restored_from}"
    elif result.source == "history":
        origin = f"rebuilt from the champion rows of v{result.good_version} in predictions.history"
    else:
        origin = f"already without v{result.bad_version}, left as they were"
    versions = ", ".join(f"v{v}" for v in result.model_versions)
    console.print(
        f"[green]rolled back[/green] {result.model_name} v{result.bad_version} -> "
        f"v{result.good_version}; {result.rows_restored:,} rows of {result.model_name} "
        f"({versions}) {origin}, other models untouched; "
        f"{result.documents_synced:,} documents resynced"
    )


@app.command()
def generate(
    customers: Annotated[int, typer.Option(min=1, help="Customers to draw.")],
    days: Annotated[int, typer.Option(min=1, help="Days of orders.")],
    out: Annotated[Path, typer.Option(help="Landing folder (orders/ and customers/).")],
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 0,
    start: Annotated[
        dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First day of orders.")
    ] = dt.datetime(2023, 1, 1),
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Write synthetic customers and orders as landing files, one chunk of customers at a time."""
    from jobs.lakehouse import generate as write_landing

    with console.status(f"generating {customers:,} customers over {days} days"):
        try:
            result = write_landing(
                customers=customers,
                days=days,
                seed=seed,
                out=out,
                start=start.date(),
                file_format=file_format,
            )
        except ValueError as exc:
            raise _fail(str(exc), code=2) from exc
    console.print(
        f"[green]wrote[/green] {result.customers:,} customers and {result.orders:,} orders "
        f"in {result.files} files under {result.out} ({result.seconds:.1f} s)"
    )


@app.command("resort-silver")
def resort_silver(
    if_needed: Annotated[
        bool, typer.Option(help="Only when a merge, update or delete came since the last one.")
    ] = False,
) -> None:
    """Rewrite silver.orders sorted by customer, then order date (same rows, one commit)."""
    from jobs.lakehouse import needs_resort, resort_table
    from jobs.platform import get_spark, table_exists
    from schemas.tables import SILVER_ORDERS

    settings = _settings()
    spark = get_spark(settings)
    if not table_exists(spark, settings, SILVER_ORDERS):
        raise _fail(f"{SILVER_ORDERS.name} does not exist yet: ingest orders first", code=2)
    if if_needed and not needs_resort(spark, settings, SILVER_ORDERS):
        console.print(f"{SILVER_ORDERS.name} is in order since its last rewrite: skipped")
        return
    with console.status(f"rewriting {SILVER_ORDERS.name} in customer order"):
        result = resort_table(spark, settings, SILVER_ORDERS)
    console.print(
        f"[green]resorted[/green] {result.table}: {result.rows:,} rows, "
        f"{result.files_before} files -> {result.files_after} (version {result.version})"
    )


@app.command()
def retention() -> None:
    """The weekly retention now: VACUUM every table (retention.vacuum_hours), set log
    retention, drop collections old full syncs left, prune old unregistered MLflow artifacts."""
    from jobs.platform import LeaseHeldError, apply_retention, ensure_local_mongo, get_spark

    settings = _settings()
    ensure_local_mongo(settings)
    try:
        result = apply_retention(get_spark(settings), settings)
    except LeaseHeldError as exc:
        raise _fail(f"retention refused: {exc}") from exc
    for key, value in result.metadata().items():
        console.print(f"{key}: {value}")


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="The same figures as one JSON object.")
    ] = False,
) -> None:
    """Last runs, the current champion and challenger, and the sync lag."""
    from cli.status import show_status

    show_status(_settings(), console=console, as_json=as_json)


@app.command()
def demo(
    date: DateOpt = dt.datetime(1998, 2, 1),
    keep_serving: Annotated[bool, typer.Option(help="Leave the API and Mongo running.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run one night on CDNOW, then look customers up over HTTP: every tier of the API."""
    from cli.demo import run_demo

    try:
        run_demo(
            _settings(),
            score_date=date.date(),
            keep_serving=keep_serving,
            console=console,
            verbose=verbose,
        )
    except NightFailed as exc:
        raise _fail(str(exc)) from exc


app.command("history")(history_command)
app.command("sql")(sql_command)
app.command("publish")(publish_command)

mongo = typer.Typer(help="The local Mongo-wire server (only when no MONGO_URI is set).")
app.add_typer(mongo, name="mongo")


@mongo.command("start")
def mongo_start() -> None:
    """Start the local server (SecantusDB) in the background."""
    from jobs.platform import ensure_local_mongo

    console.print(f"serving store at {ensure_local_mongo(_settings())}")


@mongo.command("stop")
def mongo_stop() -> None:
    """Stop the local server started by lakescore."""
    from jobs.platform import stop_local_mongo

    console.print("stopped" if stop_local_mongo(_settings()) else "no local server was started")


if __name__ == "__main__":
    app()
