"""How a run's steps execute when the daemon or the UI launches it (``lakescore night``
runs in the command line's process with ``execute_in_process``, whatever is set here).

- **Local Spark master** (``local``, ``local[N]``, ``local[*]``, ``local-cluster[...]``):
  Dagster's ``in_process_executor``. The run worker executes every step in its own process,
  so a run opens one Spark session (one driver JVM) and every step reuses it, as
  ``lakescore night`` does. Dagster's default, the multiprocess executor, starts one
  process per step and each of them its own local Spark driver: start-up paid again for
  every step, and several drivers side by side on one machine. Step retries
  (``schedule.step_retries``) work the same: the in-process executor retries a failed step
  in the same process after the policy's delay.
- **Cluster master** (``spark://``, ``yarn``, ``k8s://``, ``sc://``, ...): Dagster's
  ``multiprocess_executor``. The data and the work are on the cluster and a step's driver
  is a client of it, so a driver start per step costs seconds against steps of minutes;
  in exchange every step has a driver of its own: a driver that dies (out of memory on a
  large collect) fails only its step, whose retry policy starts it again in a fresh
  process, where under the in-process executor it would take the whole run worker down
  with it; and independent branches (backtests, reports) run side by side. Its
  ``max_concurrent`` (default: the machine's CPU count) is run config:
  ``execution: {config: {multiprocess: {max_concurrent: 2}}}``.
"""

from __future__ import annotations

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from schemas.settings import Settings


def is_local_master(master: str) -> bool:
    """A Spark master that runs the whole application in this machine's driver JVM."""
    return master.strip().lower().startswith("local")


def executor_for(settings: Settings) -> ExecutorDefinition:
    """The executor of every job of the definitions (see the module's docstring)."""
    if is_local_master(settings.spark.master):
        return in_process_executor
    return multiprocess_executor
