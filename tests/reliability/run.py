"""The reliability suite in one command: ``python -m tests.reliability.run [--fast|--slow]``.

Runs every test marked ``reliability`` (``--fast``: without the ``slow`` ones, what CI
runs anyway as part of ``-m "not slow"``; ``--slow``: only those), then prints the
report table again as the last thing on screen. The table is also in
``data/reliability/last.json``. Other arguments go to pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pytest

from tests.reliability.plugin import REPORT_ENV, format_table

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    tier = parser.add_mutually_exclusive_group()
    tier.add_argument("--fast", action="store_true", help="leave out the slow scenarios")
    tier.add_argument("--slow", action="store_true", help="only the slow scenarios")
    args, extra = parser.parse_known_args(argv)
    report = Path(os.environ.get(REPORT_ENV) or REPO / "data" / "reliability" / "last.json")
    os.environ[REPORT_ENV] = str(report)
    report.unlink(missing_ok=True)  # never show a table from an earlier run
    markers = "reliability" + (" and not slow" if args.fast else " and slow" if args.slow else "")
    code = int(pytest.main(["-m", markers, *extra]))
    if not report.exists():
        print(f"no reliability report was written (pytest exit code {code})")
        return code or 1
    rows = json.loads(report.read_text())["rows"]
    lost = sum(r["rows_lost"] or 0 for r in rows)
    duplicated = sum(r["rows_duplicated"] or 0 for r in rows)
    failed = sum(1 for r in rows if r["failed"])
    known = sum(1 for r in rows if r["xfailed"] and not r["failed"])
    print()
    print(format_table(rows))
    print(
        f"{len(rows)} scenarios, {failed} failed, {known} with a known defect, rows lost {lost}, "
        f"rows duplicated {duplicated} (pytest exit code {code}; {report})"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
