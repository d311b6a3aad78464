"""Publishing a night held back by its audit, after a review (the runbook's step).

``lakescore publish --date 1998-02-01 --reason "promo day: the drift is real"`` puts the
date's newest held run (or ``--run-id``) into ``predictions.current``, records the
reason in ``monitoring.publications``, and syncs MongoDB. ``lakescore publish --date D
--list`` shows the date's held runs and why each was held.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from cli.errors import err, load_settings
from cli.errors import out as console


def publish(
    date: Annotated[
        dt.datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="The held score date.")
    ],
    reason: Annotated[
        str, typer.Option(help="What the review found (recorded with the publication).")
    ] = "",
    run_id: Annotated[
        str | None, typer.Option(help="Which held run (default: the date's newest).")
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list the date's held runs.")
    ] = False,
) -> None:
    """Publish a night its audit held back, after a review: current, then MongoDB."""
    from jobs.ops import held_runs, publish_held
    from jobs.platform import ensure_local_mongo, get_spark
    from jobs.scoring import ScoringError
    from jobs.sync import SyncError
    from jobs.sync import sync as run_sync

    settings = load_settings()
    spark = get_spark(settings)
    day = date.date()
    if list_only:
        table = Table(title=f"held runs for {day}")
        for column in ("run_id", "recorded_at", "coverage", "held because"):
            table.add_column(column)
        for run in held_runs(spark, settings, score_date=day):
            why = "; ".join(json.loads(run.audit_json or "{}").values()) or "unknown"
            table.add_row(run.run_id, str(run.recorded_at), f"{run.coverage:.4f}", why)
        console.print(table)
        return
    try:
        run, publication = publish_held(
            spark, settings, score_date=day, reason=reason, run_id=run_id
        )
    except ScoringError as exc:
        err.print(f"[red]not published:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    console.print(
        f"[green]published[/green] run {run.run_id} for {day} "
        f"(predictions.current version {publication.current_version}: {publication.modes})"
    )
    ensure_local_mongo(settings)
    try:
        synced = run_sync(spark, settings, mode="auto")
    except SyncError as exc:
        err.print(f"[red]sync failed:[/red] {exc} (published; run `lakescore sync` again)")
        raise typer.Exit(code=1) from exc
    console.print(f"[green]synced[/green] {synced}")
