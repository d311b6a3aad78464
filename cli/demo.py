"""``lakescore demo``: one night on CDNOW, then real lookups over HTTP."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import httpx
from rich.console import Console
from rich.table import Table

from cli.runs import dagster_home, run_job
from schemas.settings import Settings

DEMO_CUSTOMERS = ("00001", "00042", "01234", "23570", "NEW-CUSTOMER")


def run_demo(
    settings: Settings, *, score_date: dt.date, keep_serving: bool, console: Console
) -> None:
    from jobs.platform import stop_local_mongo
    from pipelines.definitions import NIGHTLY_JOB

    console.print(
        f"[bold]running the night of {score_date} on CDNOW[/bold] (first run trains a model)"
    )
    run_id = run_job(settings, job_name=NIGHTLY_JOB, partition=score_date)
    console.print(f"[green]night done[/green] (Dagster run {run_id})")
    url = f"http://{settings.api.host}:{settings.api.port}"
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
            str(settings.api.port),
            "--log-level",
            "warning",
        ],
    )
    try:
        _wait_http(f"{url}/healthz")
        console.print(_lookups(url))
    finally:
        if not keep_serving:
            proc.terminate()
            proc.wait(timeout=10)
            if not settings.mongo.uri:
                stop_local_mongo(settings)
    home = dagster_home(settings)
    console.print(
        f"\nDagster UI: DAGSTER_HOME={home} .venv/bin/dagster dev -m pipelines.definitions"
        "  -> http://127.0.0.1:3000\n"
        f"MLflow UI:  .venv/bin/mlflow ui --backend-store-uri {settings.mlflow.tracking_uri}"
        "  -> http://127.0.0.1:5000\n"
        f"API:        .venv/bin/lakescore serve  -> {url}/docs"
        + ("  (running now)" if keep_serving else "")
    )


def _lookups(url: str) -> Table:
    table = Table(title=f"GET {url}/v1/customers/{{id}}/predictions")
    for column in ("customer", "known", "source", "score", "model version", "score date"):
        table.add_column(column)
    for customer in DEMO_CUSTOMERS:
        resp = httpx.get(f"{url}/v1/customers/{customer}/predictions", timeout=5)
        resp.raise_for_status()
        body = resp.json()
        for p in body["predictions"]:
            table.add_row(
                customer,
                str(body["known"]),
                p["source"],
                f"{p['score']:.4f}",
                str(p["model_version"]),
                str(p["score_date"]),
            )
    return table


def _wait_http(url: str, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")
