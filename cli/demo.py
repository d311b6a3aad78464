"""``lakescore demo``: one night on CDNOW, then every tier of the lookup API over HTTP.

The tiers: a customer the night scored gets the batch score (``GET .../predictions``); a
new customer gets the cold-start model's score when the website sends what it knows at
request time (``POST .../coldstart`` with a context: the cold-start model is consulted only
there, never by a plain ``GET``), and the model's prior without one. Then where to look
next: the night report, the Dagster UI and the MLflow UI.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from rich import box
from rich.console import Console
from rich.table import Table

from cli.output import RunOutput, logs_dir, shown_path
from cli.runs import dagster_home, run_job
from schemas.settings import Settings

# CDNOW customers the night scores: batch answers.
KNOWN_CUSTOMERS = ("00001", "23570")
# What a website knows of a customer who just placed a first order: the request-time inputs of
# the cold-start model that CDNOW has (it has no country, channel or device).
COLDSTART_CONTEXT: dict[str, Any] = {"first_order_amount": 45.5, "first_order_items": 2}


@dataclass(frozen=True)
class Lookup:
    customer: str
    method: Literal["GET", "POST"]  # GET .../predictions, POST .../coldstart
    context: dict[str, Any] | None = None

    @property
    def request(self) -> str:
        return "POST coldstart" if self.method == "POST" else "GET predictions"

    def send(self, client: httpx.Client) -> dict[str, Any]:
        base = f"/v1/customers/{self.customer}"
        if self.method == "POST":
            resp = client.post(f"{base}/coldstart", json={"context": self.context or {}})
        else:
            resp = client.get(f"{base}/predictions")
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body


LOOKUPS = (
    *(Lookup(customer, "GET") for customer in KNOWN_CUSTOMERS),
    Lookup("NEW-1", "POST", COLDSTART_CONTEXT),
    Lookup("NEW-2", "GET"),
)


def run_demo(
    settings: Settings,
    *,
    score_date: dt.date,
    keep_serving: bool,
    console: Console,
    verbose: bool = False,
) -> None:
    from jobs.platform import stop_local_mongo
    from pipelines.definitions import NIGHTLY_JOB

    with RunOutput(settings, console=console, verbose=verbose) as out:
        run_job(
            settings,
            job_name=NIGHTLY_JOB,
            partition=score_date,
            output=out,
            title=f"night {score_date} on CDNOW",
        )
    url = f"http://{settings.api.host}:{settings.api.port}"
    api_log = logs_dir(settings) / "api.log"
    api_log.parent.mkdir(parents=True, exist_ok=True)
    with api_log.open("ab") as log:
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
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_http(f"{url}/healthz", proc=proc, log=api_log)
        show_tiers(console, url)
    finally:
        if not keep_serving:
            proc.terminate()
            proc.wait(timeout=10)
            if not settings.mongo.uri:
                stop_local_mongo(settings)
    show_where_next(console, settings, score_date=score_date, url=url, serving=keep_serving)


def show_tiers(console: Console, url: str) -> list[tuple[Lookup, dict[str, Any]]]:
    """The demo's lookups against the API at ``url``, as a table; returns the answers."""
    with httpx.Client(base_url=url, timeout=5) as client:
        answers = [(lookup, lookup.send(client)) for lookup in LOOKUPS]
    console.print()
    console.print(lookup_table(url, answers))
    return answers


def show_where_next(
    console: Console, settings: Settings, *, score_date: dt.date, url: str, serving: bool
) -> None:
    console.print()
    for line in where_next(settings, score_date=score_date, url=url, serving=serving):
        console.print(line, highlight=False)


def lookup_table(url: str, answers: list[tuple[Lookup, dict[str, Any]]]) -> Table:
    """One row per lookup: who, how asked, which tier answered (``source``), the score."""
    table = Table(
        title=f"{url}/v1/customers/{{id}}/...",
        box=box.SIMPLE_HEAD,
        caption=_caption(answers),
        caption_justify="left",
    )
    for column in ("customer", "request", "answered by", "score", "version", "score date"):
        table.add_column(column, no_wrap=True)
    for lookup, body in answers:
        for p in body["predictions"]:
            table.add_row(
                lookup.customer,
                lookup.request,
                p["source"],
                f"{p['score']:.4f}",
                "-" if p["model_version"] is None else f"v{p['model_version']}",
                p["score_date"] or "-",
            )
    return table


def _caption(answers: list[tuple[Lookup, dict[str, Any]]]) -> str:
    sources = {
        p["source"] for lookup, body in answers if lookup.context for p in body["predictions"]
    }
    context = ", ".join(f"{k}={v}" for k, v in COLDSTART_CONTEXT.items())
    if "coldstart" in sources:
        return f"NEW-1 sent its context: {context}"
    return f"NEW-1 sent {context}, but the API has no cold-start model: the prior answered"


def where_next(settings: Settings, *, score_date: dt.date, url: str, serving: bool) -> list[str]:
    """Where the night report, the Dagster UI, the MLflow UI and the API are."""
    bin_dir = shown_path(Path(sys.prefix) / "bin")
    report = Path(settings.data_dir) / "reports" / score_date.isoformat() / "nightly.html"
    tracking = settings.mlflow.tracking_uri
    if tracking.startswith("sqlite:///"):
        tracking = "sqlite:///" + shown_path(Path(tracking.removeprefix("sqlite:///")))
    home = shown_path(dagster_home(settings))
    lines = [
        f"[bold]night report[/bold]  {shown_path(report)}",
        "[bold]Dagster UI[/bold]    http://127.0.0.1:3000, once started with:",
        f"  DAGSTER_HOME={home} {bin_dir}/dagster dev -m pipelines.definitions",
        "[bold]MLflow UI[/bold]     http://127.0.0.1:5000, once started with:",
        f"  {bin_dir}/mlflow ui --backend-store-uri {tracking}",
        "[bold]API[/bold]           "
        + (
            f"{url}/docs (running now)"
            if serving
            else f"{bin_dir}/lakescore serve, then {url}/docs"
        ),
    ]
    return lines


def _wait_http(
    url: str, *, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}: see {shown_path(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s: see {shown_path(log)}")
