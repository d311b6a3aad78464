"""The reliability report: scenario tests record what they did and what they measured.

A scenario test asks for the ``reliability_report`` fixture and calls ``record(...)``
with figures it measured (rows compared against Delta or MongoDB, answers counted).
Rows of the same scenario (parametrized tests, several tests of one scenario) are
summed. At the end of the run the table is printed and written as JSON to
``data/reliability/last.json`` (``LAKESCORE_RELIABILITY_REPORT`` overrides the path).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "LAKESCORE_RELIABILITY_REPORT"
COLUMNS = ("scenario", "load held", "faults", "bad inputs", "rows lost", "rows dup", "outcome")
_KEY = pytest.StashKey["ReliabilityReport"]()


@dataclass
class Row:
    scenario: str
    load: str = "-"
    faults: int = 0
    bad_inputs: int = 0
    rows_lost: int | None = None  # None: nothing to lose in this scenario
    rows_duplicated: int | None = None
    details: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    xfailed: list[str] = field(default_factory=list)  # known defects (pytest.mark.xfail)

    @property
    def outcome(self) -> str:
        if self.failed:
            return f"FAILED ({len(self.failed)})"
        return f"known defect ({len(self.xfailed)})" if self.xfailed else "passed"

    def cells(self) -> tuple[str, ...]:
        def num(value: int | None) -> str:
            return "-" if value is None else str(value)

        return (
            self.scenario,
            self.load,
            str(self.faults),
            str(self.bad_inputs),
            num(self.rows_lost),
            num(self.rows_duplicated),
            self.outcome,
        )


def _add(total: int | None, value: int | None) -> int | None:
    if value is None:
        return total
    return value if total is None else total + value


class ReliabilityReport:
    """Every scenario row of this run, keyed by scenario name (in first-recorded order)."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def add(
        self,
        nodeid: str,
        *,
        scenario: str,
        load: str = "-",
        faults: int = 0,
        bad_inputs: int = 0,
        rows_lost: int | None = None,
        rows_duplicated: int | None = None,
        detail: str = "",
    ) -> None:
        row = self.rows.setdefault(scenario, Row(scenario=scenario))
        if load != "-":
            row.load = load if row.load in ("-", load) else f"{row.load}; {load}"
        row.faults += faults
        row.bad_inputs += bad_inputs
        row.rows_lost = _add(row.rows_lost, rows_lost)
        row.rows_duplicated = _add(row.rows_duplicated, rows_duplicated)
        if detail:
            row.details.append(detail)
        if nodeid not in row.tests:
            row.tests.append(nodeid)

    def mark(self, nodeid: str, *, xfailed: bool) -> None:
        for row in self.rows.values():
            marked = row.xfailed if xfailed else row.failed
            if nodeid in row.tests and nodeid not in marked:
                marked.append(nodeid)

    def as_json(self) -> dict[str, Any]:
        return {
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "columns": list(COLUMNS),
            "rows": [
                {**asdict(r), "outcome": r.outcome}
                for r in sorted(self.rows.values(), key=_scenario_order)
            ],
        }


def _scenario_order(row: Row) -> tuple[int, str]:
    """Numbered fault scenarios first (1, 2, ... 10), then the security ones."""
    number = row.scenario.split(" ", 1)[0]
    return (int(number), "") if number.isdigit() else (1_000, row.scenario)


class ScenarioRecorder:
    """What a test sees: ``record(...)`` for the test that asked for it."""

    def __init__(self, report: ReliabilityReport, nodeid: str) -> None:
        self._report = report
        self._nodeid = nodeid

    def record(
        self,
        *,
        scenario: str,
        load: str = "-",
        faults: int = 0,
        bad_inputs: int = 0,
        rows_lost: int | None = None,
        rows_duplicated: int | None = None,
        detail: str = "",
    ) -> None:
        self._report.add(
            self._nodeid,
            scenario=scenario,
            load=load,
            faults=faults,
            bad_inputs=bad_inputs,
            rows_lost=rows_lost,
            rows_duplicated=rows_duplicated,
            detail=detail,
        )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = ReliabilityReport()


@pytest.fixture
def reliability_report(request: pytest.FixtureRequest) -> ScenarioRecorder:
    return ScenarioRecorder(request.config.stash[_KEY], request.node.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if hasattr(report, "wasxfail"):
        if report.skipped:  # failed as expected: the defect is still there
            item.config.stash[_KEY].mark(item.nodeid, xfailed=True)
    elif report.failed:
        item.config.stash[_KEY].mark(item.nodeid, xfailed=False)
    return report


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain text table (no colour codes: it also goes to CI logs and notes)."""
    cells = [COLUMNS, *[_cells(r) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    line = "-+-".join("-" * w for w in widths)
    out = [line]
    for n, row in enumerate(cells):
        out.append(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    return Row(**{k: v for k, v in row.items() if k != "outcome"}).cells()


def report_path(config: pytest.Config) -> Path:
    override = os.environ.get(REPORT_ENV)
    if override:
        return Path(override)
    return Path(config.rootpath) / "data" / "reliability" / "last.json"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(_KEY, None)
    if report is None or not report.rows:
        return
    data = report.as_json()
    path = report_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    terminalreporter.section("reliability report")
    terminalreporter.write_line(format_table(data["rows"]))
    for row in data["rows"]:
        for detail in row["details"]:
            terminalreporter.write_line(f"  {row['scenario']}: {detail}")
    terminalreporter.write_line(f"written to {path}")
