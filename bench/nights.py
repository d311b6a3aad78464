"""Helpers for running whole nights in their own processes and stores, and reading back
what they did: the ``lakescore`` command, an environment with the run's own stores, peak
memory of a process tree, and the Dagster run's per-step seconds. Used by
``bench night`` and the at-scale night test (tests/e2e/test_night_at_scale.py)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Variables of the calling environment that would change the run's settings: the night
# sees only the defaults plus the run's own stores.
_INHERITED_SETTINGS = ("MONGO_URI", "MLFLOW_TRACKING_URI", "SPARK_MASTER", "DAGSTER_HOME")


def cli() -> list[str]:
    script = Path(sys.executable).parent / "lakescore"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def run_env(root: Path, landing: Path, mongo_port: int) -> dict[str, str]:
    """The calling environment without lakescore settings, plus this run's own stores."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LAKESCORE_") and k not in _INHERITED_SETTINGS
    }
    env.update(
        {
            "LAKESCORE_DATA_DIR": str(root / "data"),
            "LAKESCORE_LAKE__ROOT": str(root / "lake"),
            "LAKESCORE_MLFLOW__TRACKING_URI": f"sqlite:///{root}/mlflow/mlflow.db",
            "LAKESCORE_MLFLOW__ARTIFACT_ROOT": str(root / "mlflow" / "artifacts"),
            # No MONGO_URI: the night starts the embedded server itself, as by default,
            # on a port and storage of its own.
            "LAKESCORE_MONGO__LOCAL_PORT": str(mongo_port),
            "LAKESCORE_MONGO__LOCAL_STORAGE_PATH": str(root / "mongo"),
            "LAKESCORE_LAKEHOUSE__LANDING_DIR": str(landing),
            "GX_ANALYTICS_ENABLED": "False",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
            "COLUMNS": "200",
        }
    )
    return env


# -- peak memory of a process tree, polled from /proc -------------------------------------


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def _kb(text: str, key: str) -> int | None:
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(key)), None)


def _memory_and_kind(pid: int) -> tuple[int, int, str] | None:
    """Resident and proportional set size (bytes) and the kind of process ``pid`` is.

    Sums over the tree use PSS: a process forked by the JVM (Hadoop's shell commands)
    shares the JVM's pages until it execs, and RSS would count them twice.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    rss_kb = _kb(status, "VmRSS:") or 0
    try:
        pss_kb = _kb(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss:")
    except OSError:
        pss_kb = None
    if "org.apache.spark" in cmdline:
        kind = "spark_jvm"
    elif "secantusd" in cmdline:
        kind = "mongo_server"
    elif "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
        kind = "python_workers"
    else:
        kind = "driver_and_other"
    return rss_kb * 1024, (rss_kb if pss_kb is None else pss_kb) * 1024, kind


@dataclass
class TreeMemory:
    """Peak memory of a process and its descendants: PSS summed over the tree and by kind,
    RSS per process."""

    root_pid: int
    interval_s: float = 1.0
    peak_total: int = 0
    peak_by_kind: dict[str, int] = field(default_factory=dict)
    peak_by_process: dict[str, int] = field(default_factory=dict)  # "<kind> <pid>": RSS
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        tree = _children()
        pids, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(tree.get(pid, []))
        total, by_kind = 0, dict[str, int]()
        for pid in pids:
            found = _memory_and_kind(pid)
            if found is None:
                continue
            rss, pss, kind = found
            total += pss
            by_kind[kind] = by_kind.get(kind, 0) + pss
            name = f"{kind} {pid}"
            self.peak_by_process[name] = max(self.peak_by_process.get(name, 0), rss)
        self.peak_total = max(self.peak_total, total)
        for kind, pss in by_kind.items():
            self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), pss)

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()


def settings_for(env: dict[str, str]) -> Any:
    """The settings the night read (same environment, same working directory)."""
    from schemas.settings import Settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True, kw_only=True)
class DagsterRun:
    run_id: str | None
    status: str
    steps_s: dict[str, float]  # seconds per step (all its attempts), in start order
    attempts: dict[str, int]  # steps that needed more than one attempt
    errors: list[str]  # every failed attempt: step, then the error and its causes


def _error_text(error: Any) -> str:
    parts = []
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message.strip()}"[:1500])
        error = error.cause
    return " <- caused by ".join(parts)


def dagster_run(settings: Any, *, score_date: dt.date) -> DagsterRun:
    """The night's Dagster run, read back from the instance it was recorded in."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    home = Path(settings.data_dir) / "dagster"
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(
            filters=RunsFilter(tags={"dagster/partition": score_date.isoformat()}), limit=1
        )
        if not runs:
            return DagsterRun(run_id=None, status="no run", steps_s={}, attempts={}, errors=[])
        run = runs[0]
        stats = sorted(
            instance.get_run_step_stats(run.run_id), key=lambda s: s.start_time or float("inf")
        )
        errors = []
        for kind in (DagsterEventType.STEP_UP_FOR_RETRY, DagsterEventType.STEP_FAILURE):
            for record in instance.all_logs(run.run_id, of_type=kind):
                event = record.dagster_event
                error = getattr(event.event_specific_data, "error", None) if event else None
                if event is not None and error is not None:
                    errors.append(f"{record.timestamp:.0f} {event.step_key}: {_error_text(error)}")
        return DagsterRun(
            run_id=run.run_id,
            status=run.status.value,
            steps_s={
                s.step_key: round((s.end_time or time.time()) - (s.start_time or time.time()), 1)
                for s in stats
            },
            attempts={s.step_key: s.attempts or 1 for s in stats if (s.attempts or 1) > 1},
            errors=sorted(errors),
        )
