"""The map's import rules, checked on the source: who may import whom.

Every import counts, wherever it is written: at the top, inside a function, or under
``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
OURS = {"schemas", "jobs", "pipelines", "api", "cli", "tests", "bench"}
# The folders whose modules are checked for cycles (tests and benches import freely).
PRODUCT = ("schemas", "jobs", "pipelines", "api", "cli")
# jobs/ sub-packages, bottom to top: a package imports only those below it.
JOBS_ORDER = (
    "platform",
    "lakehouse",
    "features",
    "training",
    "scoring",
    "sync",
    "monitoring",
    "ops",
)

# folder -> what it must never import (ours and third-party)
FORBIDDEN = {
    "schemas": OURS - {"schemas"},
    "jobs": {"pipelines", "api", "cli", "tests", "bench", "dagster"},
    "pipelines": {"api", "cli", "tests", "bench"},
    "api": {"jobs", "pipelines", "cli", "tests", "bench", "pyspark", "dagster", "delta"}
    | {"great_expectations"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, module, names)`` for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module, [alias.name for alias in node.names]


def import_graph(root: Path, folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Our modules and the modules of ours each one imports (``from P import m``, where
    ``m`` is a module, is an import of ``P.m`` as well as of ``P``)."""
    paths = {
        module_name(p, root): p
        for folder in folders
        for p in sorted((root / folder).rglob("*.py"))
        if "__pycache__" not in p.parts
    }
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for name, path in paths.items():
        for _, module, names in imported_modules(path, root):
            targets = {module} | {f"{module}.{n}" for n in names}
            graph[name] |= {t for t in targets if t in paths and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_respects_the_import_rules(folder: str) -> None:
    violations = []
    for path in sorted((REPO / folder).rglob("*.py")):
        bad = {m.split(".")[0] for _, m, _ in imported_modules(path, REPO)} & FORBIDDEN[folder]
        if bad:
            violations.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def jobs_rule_violations(root: Path) -> list[str]:
    """``jobs/`` sub-packages import each other only through their faces and never upward;
    ``pipelines/`` and ``cli/`` use the faces too; no module sits loose in ``jobs/``."""
    violations = []
    loose = [p.name for p in (root / "jobs").glob("*.py") if p.name != "__init__.py"]
    if loose:
        violations.append(f"modules outside a jobs/ domain: {sorted(loose)}")
    for folder in ("jobs", "pipelines", "cli"):
        for path in sorted((root / folder).rglob("*.py")):
            mine = module_name(path, root).split(".")
            own = mine[1] if folder == "jobs" and len(mine) > 1 else None
            where = path.relative_to(root)
            for line, module, names in imported_modules(path, root):
                parts = module.split(".")
                if parts[0] != "jobs" or len(parts) < 2 or parts[1] == own:
                    continue
                submodules = [n for n in names if (root / "jobs" / parts[1] / f"{n}.py").exists()]
                if len(parts) == 2 and submodules:
                    violations.append(f"{where}:{line} imports the module {module}.{submodules[0]}")
                if len(parts) > 2:
                    violations.append(
                        f"{where}:{line} imports {module}, not the face jobs.{parts[1]}"
                    )
                if own and JOBS_ORDER.index(parts[1]) > JOBS_ORDER.index(own):
                    violations.append(f"{where}:{line} imports {module}, above jobs.{own}")
    return violations


def test_jobs_packages_import_each_other_through_faces_and_never_upward() -> None:
    packages = sorted(p.name for p in (REPO / "jobs").iterdir() if (p / "__init__.py").exists())
    assert packages == sorted(JOBS_ORDER)
    violations = jobs_rule_violations(REPO)
    assert not violations, "\n".join(violations)


def test_no_import_cycle_among_our_modules() -> None:
    graph = import_graph(REPO, PRODUCT)
    assert len(graph) > 100  # the walk found the product's modules
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function_or_type_check(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        {
            "jobs/__init__.py": "",
            "jobs/a/__init__.py": "from jobs.a.one import f\n",
            "jobs/a/one.py": "def f():\n    import jobs.a.two\n",
            "jobs/a/two.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .one import f\n"
            ),
            "jobs/a/three.py": "import jobs.a.two\n",
        },
    )
    cycle = find_cycle(import_graph(tmp_path, ("jobs",)))
    assert cycle == ["jobs.a.one", "jobs.a.two", "jobs.a.one"]
    _write(tmp_path, {"jobs/a/two.py": "import os\n"})
    assert find_cycle(import_graph(tmp_path, ("jobs",))) is None


def test_the_jobs_rules_catch_a_deep_or_upward_import(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "jobs/__init__.py": "",
            "jobs/platform/__init__.py": "",
            "jobs/platform/spark.py": "def f():\n    from jobs.ops import g\n",
            "jobs/ops/__init__.py": "",
            "jobs/ops/run.py": "from jobs.platform.spark import f\n",
            "pipelines/x.py": "from jobs.ops import run\n",
            "cli/y.py": "from jobs.ops.run import f\n",
        },
    )
    assert jobs_rule_violations(tmp_path) == [
        "jobs/ops/run.py:1 imports jobs.platform.spark, not the face jobs.platform",
        "jobs/platform/spark.py:2 imports jobs.ops, above jobs.platform",
        "pipelines/x.py:1 imports the module jobs.ops.run",
        "cli/y.py:1 imports jobs.ops.run, not the face jobs.ops",
    ]


def api_routes_import_violations(root: Path) -> list[str]:
    """Only ``api.main`` (which mounts them) imports ``api.routes``: the guard, the ASGI
    shortcut and everything else in ``api/`` sit below the routes (the routes and the
    shortcut share ``api.lookup_service``). Any import counts, in a function too, and
    ``importlib.import_module`` of a literal name."""
    violations = []
    for path in sorted((root / "api").rglob("*.py")):
        if module_name(path, root) == "api.main":
            continue
        where = path.relative_to(root)
        found = [
            (line, "api.routes" if module == "api" else module)
            for line, module, names in imported_modules(path, root)
            if module == "api.routes"
            or module.startswith("api.routes.")
            or (module == "api" and "routes" in names)
        ]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).split(".")[:2] == ["api", "routes"]
            ):
                found.append((node.lineno, str(node.args[0].value)))
        violations += [f"{where}:{line} imports {module}" for line, module in sorted(found)]
    return violations


def test_only_api_main_imports_the_routes() -> None:
    violations = api_routes_import_violations(REPO)
    assert not violations, "\n".join(violations)


def test_the_routes_rule_catches_imports_in_functions_and_relative_ones(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "api/__init__.py": "",
            "api/main.py": "from api.routes import health, predictions\n",
            "api/routes/__init__.py": "",
            "api/routes/predictions.py": "from api.lookup_service import single_lookup\n",
            "api/routes/health.py": "from api.routes.predictions import router\n",
            "api/asgi_shortcut.py": "def f():\n    from api.routes.predictions import x\n",
            "api/guard.py": "from . import routes\n",
            "api/deps.py": "import api.routes.health as health\n",
            "api/reads/__init__.py": "",
            "api/reads/cache.py": "from ..routes import predictions\n",
            "api/lookup_service.py": (
                "import importlib\nimportlib.import_module('api.routes.predictions')\n"
            ),
            "api/respond.py": "from api.routing_table import x\nimport api.deps\n",
        },
    )
    assert api_routes_import_violations(tmp_path) == [
        "api/asgi_shortcut.py:2 imports api.routes.predictions",
        "api/deps.py:1 imports api.routes.health",
        "api/guard.py:1 imports api.routes",
        "api/lookup_service.py:2 imports api.routes.predictions",
        "api/reads/cache.py:1 imports api.routes",
        "api/routes/health.py:1 imports api.routes.predictions",
    ]


def test_the_api_loads_without_spark_or_dagster() -> None:
    code = (
        "import sys, api.main, api.routes.predictions, api.asgi_shortcut, api.lookup_service;"
        "bad = [m for m in ('pyspark', 'dagster', 'delta', 'jobs') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
