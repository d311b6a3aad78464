"""The API's log lines are JSON objects, one per line, in a real uvicorn process: its own
warnings (an API started without keys), its own info lines (the cold-start model it
loaded) and uvicorn's; ``api.log_format=text`` keeps uvicorn's plain text."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import api_env, start_api, wait_until

pytestmark = pytest.mark.e2e
DATABASE = "json_logs"


def start(api_workdir: Path, mongo_uri: str, registry: dict[str, Any], *, fmt: str) -> Path:
    """An API without keys (it warns that it is open) over a database of its own; its log."""
    workdir = api_workdir / f"logs-{fmt}"
    workdir.mkdir(exist_ok=True)
    env = api_env(
        workdir=workdir,
        mongo_uri=mongo_uri,
        database=DATABASE,
        tracking_uri=registry["tracking_uri"],
        keys=[],
        log_format=fmt,
    )
    log = workdir / "uvicorn.log"
    process = start_api(env, log_path=log, ready_path="/readyz")
    try:
        # /readyz answered, so the cold-start model is loaded; JSON logs name it at info level
        # (text logs show no info lines of ours: waiting for it there only ran out the clock).
        if fmt == "json":
            wait_until(lambda: "cold-start model" in log.read_text())
        # Bytes that are not HTTP: uvicorn warns "Invalid HTTP request received".
        host, port = process.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"\x00\x01 not http\r\n\r\n")
            conn.recv(1024)
        wait_until(lambda: "Invalid HTTP request" in log.read_text())
    finally:
        process.stop()  # SIGTERM: uvicorn logs its shutdown
    return log


def test_the_api_logs_json_lines(
    api_workdir: Path, mongo_uri: str, api_registry: dict[str, Any]
) -> None:
    log = start(api_workdir, mongo_uri, api_registry, fmt="json")
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses
    assert all({"event", "level", "logger", "timestamp"} <= r.keys() for r in records)
    by_logger = {r["logger"]: r for r in records}
    open_api = by_logger["lakescore.api.security"]
    assert open_api["level"] == "warning"
    assert "no API keys configured" in open_api["event"]
    assert any(
        r["logger"] == "lakescore.api.models" and "cold-start model" in r["event"] for r in records
    )
    invalid = [r for r in records if "Invalid HTTP request" in r["event"]]
    assert [(r["logger"], r["level"]) for r in invalid] == [("uvicorn.error", "warning")]


def test_text_logs_on_request(
    api_workdir: Path, mongo_uri: str, api_registry: dict[str, Any]
) -> None:
    log = start(api_workdir, mongo_uri, api_registry, fmt="text")
    text = log.read_text()
    assert "no API keys configured" in text
    assert "Invalid HTTP request" in text
    assert not any(line.startswith("{") for line in text.splitlines())
    assert "Downloading artifacts" not in text  # no progress bar in either format
