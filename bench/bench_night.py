"""``python -m bench night``: where a night's seconds go, at several sizes.

Each size gets its own stores and runs two nights through ``lakescore night`` in a
subprocess, as the schedule would: a first night (the registry is empty: both models
are trained and gated) and the warm night of the next day (no training). Per step, the
seconds come from the night's Dagster run; the rest of the wall time (process start,
imports, Spark session, Dagster's own work between steps) is printed as ``outside
steps``. Peak memory is the PSS of the night's whole process tree.

Baselines, measured in the same run: the warm night is divided by the sum of its
compute-bound steps (features, scoring history, sync), the part that grows with the
data; the rest is fixed cost. The 1k-customer warm night is the fixed cost itself.

    python -m bench night [--sizes 1k,cdnow] [--large]   # --large adds 1M customers (~40 min)
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import Report
from bench.nights import TreeMemory, cli, dagster_run, run_env, settings_for
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC_START = dt.date(2023, 1, 1)
SYNTHETIC_DAYS = 365  # the default purged split needs 223 days of history before S
# Steps whose work grows with the customers (the rest is fixed cost per night).
COMPUTE_STEPS = ("gold__customer_features", "predictions__history", "serving__mongo_predictions")


@dataclass(frozen=True, kw_only=True)
class Size:
    name: str
    customers: int | None  # None: the bundled CDNOW orders (23,570 customers)
    first_date: dt.date


SIZES = {
    "1k": Size(name="1k synthetic", customers=1_000, first_date=dt.date(2024, 1, 1)),
    "cdnow": Size(name="CDNOW", customers=None, first_date=dt.date(1998, 2, 1)),
    "1m": Size(name="1M synthetic", customers=1_000_000, first_date=dt.date(2024, 1, 1)),
}


@dataclass(frozen=True, kw_only=True)
class Night:
    date: dt.date
    wall_s: float
    returncode: int
    steps_s: dict[str, float]
    peak_pss: int
    status: str

    @property
    def outside_steps_s(self) -> float:
        return self.wall_s - sum(self.steps_s.values())

    def compute_s(self) -> float:
        return sum(
            s for k, s in self.steps_s.items() if any(k.startswith(c) for c in COMPUTE_STEPS)
        )


def run_night(env: dict[str, str], settings: Any, *, day: dt.date, log: Path) -> Night:
    began = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*cli(), "night", "--date", day.isoformat()],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        memory = TreeMemory(root_pid=proc.pid)
        poller = threading.Thread(target=memory.run, daemon=True)
        poller.start()
        try:
            returncode = proc.wait(timeout=7200)
        finally:
            memory.stop()
            poller.join()
    wall = time.perf_counter() - began
    run = dagster_run(settings, score_date=day)
    return Night(
        date=day,
        wall_s=wall,
        returncode=returncode,
        steps_s=run.steps_s,
        peak_pss=memory.peak_total,
        status=run.status,
    )


def measure(size: Size, root: Path) -> tuple[Night, Night]:
    root.mkdir(parents=True, exist_ok=True)
    landing = root / "landing"
    env = run_env(root, landing, free_port())
    if size.customers is None:
        env["LAKESCORE_LAKEHOUSE__LANDING_DIR"] = ""  # the bundled CDNOW file
    else:
        subprocess.run(
            [
                *cli(),
                "generate",
                "--customers",
                str(size.customers),
                "--days",
                str(SYNTHETIC_DAYS),
                "--seed",
                "1",
                "--start",
                SYNTHETIC_START.isoformat(),
                "--out",
                str(landing),
            ],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=3600,
        )
    settings = settings_for(env)
    log = root / "nights.log"
    try:
        first = run_night(env, settings, day=size.first_date, log=log)
        warm = run_night(env, settings, day=size.first_date + dt.timedelta(days=1), log=log)
    finally:
        from jobs.platform.local_mongo import stop_local_mongo

        stop_local_mongo(settings)
    for night in (first, warm):
        if night.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{size.name} night {night.date} failed:\n{tail}")
    return first, warm


def print_size(size: Size, first: Night, warm: Night) -> None:
    print(f"\n{size.name}: first night {first.date} (trains both models), warm night {warm.date}")
    print(f"  {'step':<40} {'first s':>8} {'warm s':>8}")
    for step in dict.fromkeys([*first.steps_s, *warm.steps_s]):
        a, b = first.steps_s.get(step), warm.steps_s.get(step)
        print(f"  {step:<40} {a if a is not None else '-':>8} {b if b is not None else '-':>8}")
    print(f"  {'outside steps':<40} {first.outside_steps_s:8.1f} {warm.outside_steps_s:8.1f}")
    print(f"  {'night (wall)':<40} {first.wall_s:8.1f} {warm.wall_s:8.1f}")
    print(
        f"  {'peak memory, process tree (GiB)':<40} {first.peak_pss / 2**30:8.2f} {warm.peak_pss / 2**30:8.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench night", description=__doc__)
    parser.add_argument("--sizes", default="1k,cdnow", help="comma-separated: 1k, cdnow, 1m")
    parser.add_argument("--large", action="store_true", help="add the 1M-customer size")
    args, _ = parser.parse_known_args(argv)
    names = [n.strip() for n in args.sizes.split(",") if n.strip()]
    if args.large and "1m" not in names:
        names.append("1m")
    report = Report(benchmark="night")
    # Under the repository's data folder: a long night outlives the system's tmp cleaners.
    (REPO / "data").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-night-", dir=REPO / "data"))
    try:
        for name in names:
            size = SIZES[name]
            first, warm = measure(size, base / name)
            print_size(size, first, warm)
            compute = warm.compute_s()
            report.notes[name] = {
                "first": asdict(first),
                "warm": asdict(warm),
                "warm_compute_s": compute,
            }
            if compute > 0:
                # Baseline: the compute-bound steps of the same warm night.
                report.ratios[f"{name} warm night / its compute-bound steps"] = (
                    warm.wall_s / compute
                )
            report.ratios[f"{name} warm night / first night"] = warm.wall_s / first.wall_s
        if "1k" in report.notes:
            fixed = report.notes["1k"]["warm"]["wall_s"]
            for name in names:
                if name != "1k":
                    # How much of each warm night is the 1k night's fixed cost.
                    report.ratios[f"1k warm night (fixed cost) / {name} warm night"] = (
                        fixed / report.notes[name]["warm"]["wall_s"]
                    )
        report.print_and_save()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
