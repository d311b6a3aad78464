"""schemathesis against the live OpenAPI spec, positive and negative cases: zero server errors.

Runs the schemathesis CLI in its own process against the real uvicorn + Mongo-wire server,
with a bounded number of examples per operation, and reads its JSON report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import MAIN_KEY
from tests.api.helpers import ApiProcess

pytestmark = pytest.mark.e2e
MAX_EXAMPLES = 60


def _run(api: ApiProcess, out: Path, *, checks: str, mode: str) -> dict[str, Any]:
    report = out / f"schemathesis-{mode}.json"
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api.url}/openapi.json",
        "--header", f"X-API-Key: {MAIN_KEY}",
        "--mode", mode,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "20261125",
        "--checks", checks,
        "--phases", "examples,coverage,fuzzing",
        "--generation-database", "none",
        "--request-timeout", "10",
        "--no-color",
        "--report", "json",
        "--report-json-path", str(report),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    (out / f"schemathesis-{mode}.log").write_text(proc.stdout + proc.stderr)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(report.read_text())
    data["_returncode"], data["_stdout"] = proc.returncode, proc.stdout
    return data


@pytest.mark.reliability
def test_no_server_errors_positive_and_negative(
    api: ApiProcess, api_workdir: Path, reliability_report: Any
) -> None:
    result = _run(api, api_workdir, checks="not_a_server_error,negative_data_rejection", mode="all")
    cases = result["test_cases"]
    reliability_report.record(
        scenario="S schemathesis (positive + negative)",
        load=f"{result['operations']['tested']} operations",
        bad_inputs=int(cases["generated"]),
        detail=f"{len(result['failures'])} failures, {len(result['errors'])} errors",
    )
    print(
        f"schemathesis: {cases['generated']} cases on {result['operations']['tested']} operations"
    )
    assert result["_returncode"] == 0, result["_stdout"][-4000:]
    assert result["failures"] == [] and result["errors"] == []
    assert result["operations"]["tested"] == result["operations"]["total"] >= 5
    assert cases["generated"] >= 200  # a bounded but real run, negative cases included
