"""``lakescore``: the command line for everyday work (``lakescore --help``)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="lakescore: nightly customer scoring on Delta Lake, served over HTTP.",
    no_args_is_help=True,
)
console = Console()

DateOpt = Annotated[
    dt.datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="Score date (YYYY-MM-DD).")
]


def _settings() -> Any:
    from schemas.settings import get_settings

    return get_settings()


def _dagster_home(settings: Any) -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or Path(settings.data_dir) / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_night(score_date: dt.date) -> None:
    """Run the nightly Dagster job for one score date, recorded in the local Dagster instance."""
    from dagster import DagsterInstance

    from jobs.local_mongo import ensure_local_mongo
    from pipelines.definitions import NIGHTLY_JOB, build_definitions

    settings = _settings()
    _dagster_home(settings)
    ensure_local_mongo(settings)
    job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(partition_key=score_date.isoformat(), instance=instance)
    if not result.success:
        console.print(f"[red]night {score_date} failed (Dagster run {result.run_id})[/red]")
        raise typer.Exit(code=1)
    console.print(f"[green]night {score_date} done[/green] (Dagster run {result.run_id})")


@app.command()
def night(date: DateOpt) -> None:
    """Run one night: ingest -> features -> contract -> champion -> score -> sync."""
    run_night(date.date())


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the lookup API (starts the local Mongo-wire server when no MONGO_URI is set)."""
    import uvicorn

    from jobs.local_mongo import ensure_local_mongo

    settings = _settings()
    ensure_local_mongo(settings)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
    )


@app.command()
def demo(
    date: DateOpt = dt.datetime(1998, 2, 1),
    keep_serving: Annotated[bool, typer.Option(help="Leave the API and Mongo running.")] = False,
) -> None:
    """Run one night on CDNOW, then look a few customers up over HTTP."""
    import httpx

    from jobs.local_mongo import stop_local_mongo

    settings = _settings()
    run_night(date.date())
    port = settings.api.port
    url = f"http://{settings.api.host}:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:create_app",
            "--factory",
            "--host",
            settings.api.host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    )
    try:
        _wait_http(f"{url}/readyz")
        table = Table(title=f"lookups over HTTP at {url}")
        for column in ("customer", "source", "score", "model version", "score date"):
            table.add_column(column)
        for customer in ("00001", "00042", "01234", "23570", "NEW-CUSTOMER"):
            body = httpx.get(f"{url}/v1/customers/{customer}/predictions", timeout=5).json()
            for p in body["predictions"]:
                table.add_row(
                    customer,
                    p["source"],
                    f"{p['score']:.4f}",
                    str(p["model_version"]),
                    str(p["score_date"]),
                )
        console.print(table)
    finally:
        if not keep_serving:
            proc.terminate()
            proc.wait(timeout=10)
            if not settings.mongo.uri:
                stop_local_mongo(settings)
    home = _dagster_home(settings)
    console.print(
        "\nDagster UI:  "
        f"DAGSTER_HOME={home} .venv/bin/dagster dev -m pipelines.definitions  (http://127.0.0.1:3000)\n"
        "MLflow UI:   "
        f".venv/bin/mlflow ui --backend-store-uri {settings.mlflow.tracking_uri}  (http://127.0.0.1:5000)\n"
        f"API:        .venv/bin/lakescore serve  ({url}/docs)"
    )


def _wait_http(url: str, *, timeout_s: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


if __name__ == "__main__":
    app()
