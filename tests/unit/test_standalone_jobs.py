"""Every job that runs alone still starts alone, and the README names only modules that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
# ``python -m`` entry points with an argument parser (``--help`` exits before any work).
STANDALONE = (
    "jobs.ops.score",
    "jobs.ops.retrain",
    "jobs.ops.backfill",
    "jobs.sync",
    "jobs.lakehouse.synthetic",
    "jobs.lakehouse.ingest",
    "jobs.platform.catalog",
)


def test_every_standalone_job_starts_and_prints_its_usage() -> None:
    procs = {
        module: subprocess.Popen(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in STANDALONE
    }
    failures = []
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0 or "usage:" not in out:
            failures.append(f"{module}: exit {proc.returncode}\n{out}{err[-2000:]}")
    assert not failures, "\n".join(failures)


def test_the_readme_runs_only_modules_that_exist() -> None:
    named = set(re.findall(r"python -m ([\w.]+)", (REPO / "README.md").read_text()))
    assert {"jobs.ops.score", "jobs.ops.retrain"} <= named
    missing = sorted(m for m in named if importlib.util.find_spec(m) is None)
    assert not missing, f"README runs modules that do not exist: {missing}"
