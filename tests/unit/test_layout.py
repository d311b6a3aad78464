"""The map's import rules, checked on the source: who may import whom."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
OURS = {"schemas", "jobs", "pipelines", "api", "cli", "tests", "bench"}

# folder -> what it must never import (ours and third-party)
FORBIDDEN = {
    "schemas": {"jobs", "pipelines", "api", "cli", "pyspark", "dagster", "delta"},
    "jobs": {"pipelines", "api", "cli", "dagster"},
    "pipelines": {"api", "cli"},
    "api": {"jobs", "pipelines", "cli", "pyspark", "dagster", "delta", "great_expectations"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_respects_the_import_rules(folder: str) -> None:
    violations = []
    for path in sorted((REPO / folder).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[folder]
        if bad:
            violations.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_the_api_loads_without_spark_or_dagster() -> None:
    code = (
        "import sys, api.main, api.routes.predictions;"
        "bad = [m for m in ('pyspark', 'dagster', 'delta', 'jobs') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
