"""What a command-line night prints: one line per step on the terminal, the full logs in a file.

Quiet (the default of ``lakescore night``, ``backfill`` and ``demo``): while the command runs,
this process's standard output and error, and those of its children (Spark's JVM and the
Python workers it starts inherit them), go through one pipe into the log file of the run in
progress, ``<data_dir>/logs/<run id>.log``: Dagster's events at DEBUG, Spark's log4j lines,
MLflow, LightGBM, Python warnings. The terminal gets a line per finished step (step, rows
where known, seconds, outcome) made from the run's Dagster events, under a progress line for
the step in progress. ``--verbose``: the same log file, and everything on the terminal too, as
the commands printed before they had a quiet mode.

The pipe is made once per process and stays: the JVM keeps the descriptors it inherited at
its start for its whole life, so its lines follow the pipe into the current run's log file,
one night after another in a backfill. A process started before the first capture (a Spark
session a test opened, say) keeps writing where it wrote before.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from schemas.settings import Settings

# Written into the pipe by ``_Pump.drain``: everything before it has been copied.
_DRAIN_MARK = b"\x00lakescore-output-drained\x00"
# Output written while no log file is open yet, kept up to this size (and shown on the
# terminal when no run ever opens one: the command failed before its first run).
_PENDING_LIMIT = 1 << 20
# Metadata keys that count a step's rows, in order of preference (the first one present).
ROW_KEYS = ("rows", "rows_read", "customers", "documents", "customers_scored")
# What Dagster puts before the message of a step that raised ``Failure``.
_FAILURE_PREFIX = re.compile(r"^dagster\.[\w.]*\bFailure: ")


def logs_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "logs"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def seconds_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s"


# ---------------------------------------------------------------- the pipe and its pump


class _Pump:
    """Copies what arrives on the pipe to the current sinks (file descriptors), in a thread."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._sinks: tuple[int, ...] = ()
        self._log: int | None = None
        self._tee: int | None = None
        self._pending = bytearray()
        self._drains = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._run, name="lakescore-output", daemon=True).start()

    def set_log(self, fd: int | None) -> None:
        """Copy into the log file ``fd`` from now on (the pump's: closed when the next one takes
        over); what was kept while there was no sink goes first."""
        with self._cond:
            previous, self._log = self._log, fd
        if previous is not None and previous != fd:
            os.close(previous)
        self._update()

    def set_tee(self, fd: int | None) -> None:
        """Copy to the terminal's ``fd`` as well (``--verbose``), or no longer (None)."""
        with self._cond:
            self._tee = fd
        self._update()

    def _update(self) -> None:
        with self._cond:
            self._sinks = tuple(fd for fd in (self._log, self._tee) if fd is not None)
            if not self._sinks:
                return
            pending, self._pending = bytes(self._pending), bytearray()
        self._emit(pending)

    def take_pending(self) -> bytes:
        with self._cond:
            pending, self._pending = bytes(self._pending), bytearray()
        return pending

    def drain(self, timeout_s: float = 10.0) -> None:
        """Return once what this process wrote into the pipe before the call has been copied."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        with self._cond:
            target = self._drains + 1
        os.write(self.write_fd, _DRAIN_MARK)
        with self._cond:
            self._cond.wait_for(lambda: self._drains >= target, timeout=timeout_s)

    def _run(self) -> None:
        tail = b""
        while True:
            try:
                chunk = os.read(self.read_fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            data = tail + chunk
            while (at := data.find(_DRAIN_MARK)) >= 0:
                self._emit(data[:at])
                data = data[at + len(_DRAIN_MARK) :]
                with self._cond:
                    self._drains += 1
                    self._cond.notify_all()
            # A mark cut in two by the read: its first part waits for the next read.
            keep = next(
                (
                    k
                    for k in range(min(len(data), len(_DRAIN_MARK) - 1), 0, -1)
                    if data.endswith(_DRAIN_MARK[:k])
                ),
                0,
            )
            self._emit(data[: len(data) - keep])
            tail = data[len(data) - keep :]

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            sinks = self._sinks
            if not sinks:
                self._pending += data
                del self._pending[:-_PENDING_LIMIT]
                return
        for fd in sinks:
            _write_all(fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass  # a sink closed meanwhile: the next run's file takes over


_PUMP: _Pump | None = None
_PUMP_LOCK = threading.Lock()


def _pump() -> _Pump:
    global _PUMP
    with _PUMP_LOCK:
        if _PUMP is None:
            _PUMP = _Pump()
        return _PUMP


def _fd(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def _copy(fd: int, encoding: str | None) -> TextIO:
    """A new stream on a copy of ``fd``: still the terminal once fds 1 and 2 are the pipe."""
    return open(os.dup(fd), "w", buffering=1, encoding=encoding or "utf-8", errors="replace")


# ---------------------------------------------------------------- one line per step


@dataclass
class _Step:
    key: str
    started: float
    task: TaskID | None = None
    retries: int = 0
    rows: int | None = None
    notes: list[str] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    materialized: bool = False

    @property
    def label(self) -> str:
        """``gold__customer_features`` -> ``gold/customer_features``; a step that only ran one
        check is named after it (``check silver_orders_contract``)."""
        if not self.materialized and len(self.checks) == 1:
            return f"check {self.checks[0][0]}"
        return self.key.replace("__", "/")

    @property
    def outcome(self) -> str:
        failed = [name for name, ok in self.checks if not ok]
        parts = list(self.notes)
        if failed:
            parts.append("failed: " + ", ".join(failed))
        elif self.checks:
            n = len(self.checks)
            only = not self.materialized and n == 1  # the label names the check
            parts.append("passed" if only else f"{n} check{'s' if n > 1 else ''} passed")
        if self.retries:
            parts.append(f"after {self.retries} {'retry' if self.retries == 1 else 'retries'}")
        return ", ".join(parts) or "ok"


def step_line(mark: str, label: str, rows: int | None, seconds: float, outcome: str) -> str:
    """``✓ gold/customer_features     23,570 rows   22.8 s  ok`` (80 columns, most outcomes)."""
    shown_rows = f"{rows:,} rows" if rows is not None else ""
    return f"{mark} {label:<32.32} {shown_rows:>11} {seconds:>6.1f} s  {outcome}"


def _notes(metadata: dict[str, Any]) -> list[str]:
    """What a model step (its version and the gate's verdict) or a sync (its mode) adds."""
    notes = []
    if "model" in metadata and "version" in metadata:
        gate = str(metadata.get("gate", "")).split(":", 1)[0]
        trained = metadata.get("trained") is True
        notes.append(f"v{metadata['version']}" + (f" (trained: {gate})" if trained else ""))
    if isinstance(metadata.get("mode"), str):
        notes.append(f"{metadata['mode']} sync")
    return notes


def error_line(message: str, *, limit: int = 300) -> str:
    """A step's error in one line: its first, without Dagster's ``Failure`` class name."""
    text = _FAILURE_PREFIX.sub("", (message or "").strip())
    line = text.splitlines()[0] if text else "no message"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _error_of(data: Any) -> str:
    return error_line(str(getattr(getattr(data, "error", None), "message", "") or ""))


class StepLines:
    """Listens to one run's Dagster events (``DagsterInstance.add_event_listener``) and prints a
    line per finished step; the step in progress shows in ``progress`` when there is one."""

    def __init__(self, console: Console, progress: Progress | None) -> None:
        self.console, self.progress = console, progress
        self.succeeded: bool | None = None  # from the run's closing event
        self._steps: dict[str, _Step] = {}
        self._broken = False

    def __call__(self, entry: Any) -> None:
        """Never fails the run: a display error goes to the log, and the display stops."""
        if self._broken:
            return
        try:
            self._handle(entry)
        except Exception:
            self._broken = True
            traceback.print_exc()  # into the run's log
            self.console.print("(the step lines stopped: see the log)", highlight=False)

    def _handle(self, entry: Any) -> None:
        event = entry.dagster_event
        if event is None:
            return
        kind, data = event.event_type_value, event.event_specific_data
        if kind == "PIPELINE_SUCCESS":
            self.succeeded = True
        elif kind in ("PIPELINE_FAILURE", "PIPELINE_CANCELED"):
            self.succeeded = False
        key = event.step_key
        if key is None:
            return
        if kind == "STEP_START":
            step = self._steps[key] = _Step(key=key, started=entry.timestamp)
            if self.progress is not None:
                step.task = self.progress.add_task(key.replace("__", "/"), total=None)
            return
        step = self._steps.setdefault(key, _Step(key=key, started=entry.timestamp))
        seconds = entry.timestamp - step.started
        if kind == "STEP_UP_FOR_RETRY":
            step.retries += 1
            self._print(
                step_line(
                    "↻", step.label, None, seconds, f"retry {step.retries}: {_error_of(data)}"
                )
            )
        elif kind == "ASSET_MATERIALIZATION":
            step.materialized = True
            metadata = {k: getattr(v, "value", v) for k, v in data.materialization.metadata.items()}
            if step.rows is None:
                step.rows = next(
                    (int(metadata[k]) for k in ROW_KEYS if type(metadata.get(k)) is int), None
                )
            step.notes += [n for n in _notes(metadata) if n not in step.notes]
        elif kind == "ASSET_CHECK_EVALUATION":
            step.checks.append((data.check_name, bool(data.passed)))
        elif kind == "STEP_SUCCESS":
            self._stop(step)
            bad = any(not ok for _, ok in step.checks)
            self._print(
                step_line("!" if bad else "✓", step.label, step.rows, seconds, step.outcome),
                style="yellow" if bad else None,
            )
        elif kind == "STEP_FAILURE":
            self._stop(step)
            self._print(
                step_line("✗", step.label, step.rows, seconds, f"failed: {_error_of(data)}"),
                style="red",
            )

    def _stop(self, step: _Step) -> None:
        if self.progress is not None and step.task is not None:
            self.progress.remove_task(step.task)

    def _print(self, line: str, *, style: str | None = None) -> None:
        self.console.print(
            line, style=style, highlight=False, markup=False, no_wrap=True, overflow="ellipsis"
        )


# ---------------------------------------------------------------- a command's output


class RunOutput:
    """A command's output while it runs nights (``with RunOutput(...) as out``): the process's
    output into each run's log file, one line per step on the terminal (``out.terminal``).

    The command prints its own closing words after the ``with`` block: inside it, the
    process's standard output is the pipe.
    """

    def __init__(self, settings: Settings, *, console: Console, verbose: bool = False) -> None:
        self.settings, self.console, self.verbose = settings, console, verbose
        self.terminal = console
        self._saved: tuple[int, int] | None = None
        self._streams: tuple[TextIO, TextIO] | None = None
        self._owned: list[TextIO] = []
        self._logged = False

    def log_path(self, run_id: str) -> Path:
        return logs_dir(self.settings) / f"{run_id}.log"

    def __enter__(self) -> RunOutput:
        pump = _pump()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # The step lines go where ``console`` prints: a copy of fd 1 or 2 when it prints there.
        target = self.console.file
        out = _copy(fd, self.console.encoding) if (fd := _fd(target)) in (1, 2) else None
        # --verbose: everything the process writes goes to (a copy of) its stderr as well.
        err = _copy(fd, None) if self.verbose and (fd := _fd(sys.stderr)) is not None else None
        self._owned = [s for s in (out, err) if s is not None]
        self.terminal = Console(
            file=out or target,
            width=self.console.width,
            color_system=self.console.color_system,  # type: ignore[arg-type]
            force_terminal=self.console.is_terminal,
            highlight=False,
        )
        self._saved = (os.dup(1), os.dup(2))
        self._streams = (sys.stdout, sys.stderr)
        os.dup2(pump.write_fd, 1)
        os.dup2(pump.write_fd, 2)
        # Streams on fds 1 and 2 (now the pipe), also for a runner whose own have no descriptor.
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        pump.set_log(None)
        pump.set_tee(err.fileno() if err is not None else None)
        return self

    def __exit__(self, *exc: object) -> None:
        pump = _pump()
        pump.drain()
        assert self._saved is not None and self._streams is not None
        sys.stdout, sys.stderr = self._streams
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        pump.set_tee(None)  # its descriptor closes below
        if not self._logged:
            # No run opened a log (the command failed before its first run): show what was
            # written, and what comes later too.
            pending = pump.take_pending()
            if pending and not self.verbose:
                _write_all(2, pending)
            pump.set_tee(2)
        # Otherwise what comes later (the JVM's last lines) goes into the last run's log.
        for stream in self._owned:
            stream.close()

    @contextmanager
    def run(self, run_id: str, *, title: str) -> Iterator[StepLines]:
        """One Dagster run: its log file made the capture's sink, a header line, then its steps
        as they finish (the yielded listener is for the instance), and ``done in ...`` with
        the log's path if it succeeded (a failure's message names it). The file stays the
        sink after the run, until the next run's file opens."""
        path = self.log_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        pump = _pump()
        pump.drain()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        started = dt.datetime.now(dt.UTC)
        os.write(
            fd,
            f"lakescore: {title}, Dagster run {run_id}, {started:%Y-%m-%d %H:%M:%S} UTC\n".encode(),
        )
        pump.set_log(fd)
        self._logged = True
        self.terminal.print(f"[bold]{title}[/bold] · Dagster run {run_id}", highlight=False)
        progress = None
        if not self.verbose and self.terminal.is_terminal:  # a live line needs a terminal
            progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.terminal,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
        lines = StepLines(self.terminal, progress)
        try:
            if progress is None:
                yield lines
            else:
                with progress:
                    yield lines
        finally:
            pump.drain()
        if lines.succeeded:
            elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
            self.terminal.print(
                f"[green]done[/green] in {seconds_text(elapsed)} · log {shown_path(path)}",
                highlight=False,
            )
