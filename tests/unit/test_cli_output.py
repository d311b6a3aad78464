"""The command line's quiet output: whatever the process and its children write during a run
goes to the run's log file, the terminal gets one line per step; ``--verbose`` shows both."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from cli.output import RunOutput, error_line
from schemas.settings import Settings

pytestmark = pytest.mark.unit


def event(kind: str, step: str | None, at: float, data: Any = None) -> SimpleNamespace:
    """A Dagster event log entry, as much of one as the step lines read."""
    return SimpleNamespace(
        timestamp=at,
        dagster_event=SimpleNamespace(
            event_type_value=kind, step_key=step, event_specific_data=data
        ),
    )


def materialized(**metadata: Any) -> SimpleNamespace:
    values = {k: SimpleNamespace(value=v) for k, v in metadata.items()}
    return SimpleNamespace(materialization=SimpleNamespace(metadata=values))


def checked(name: str, passed: bool) -> SimpleNamespace:
    return SimpleNamespace(check_name=name, passed=passed)


def error(message: str) -> SimpleNamespace:
    return SimpleNamespace(error=SimpleNamespace(message=message))


def write_everywhere(tag: str) -> None:
    """What a night writes besides the step lines: prints, raw descriptors, a child process."""
    print(f"{tag} print")
    sys.stderr.write(f"{tag} stderr\n")
    os.write(1, f"{tag} fd1\n".encode())
    os.write(2, f"{tag} fd2\n".encode())
    subprocess.run(["sh", "-c", f"echo {tag} child; echo {tag} child-err >&2"], check=True)


WRITTEN = ("print", "stderr", "fd1", "fd2", "child", "child-err")


def test_a_quiet_run_logs_everything_and_prints_its_steps(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    printed = io.StringIO()
    with RunOutput(settings, console=Console(file=printed, width=120)) as out:
        with out.run("run-1", title="night 1998-02-01") as lines:
            write_everywhere("inside")
            for e in (
                event("STEP_START", "gold__customer_features", 100.0),
                event(
                    "ASSET_MATERIALIZATION",
                    "gold__customer_features",
                    120.0,
                    materialized(customers=23_570, delta_version=3),
                ),
                event("STEP_SUCCESS", "gold__customer_features", 122.8),
                event("STEP_START", "gold__customer_features_contract", 123.0),
                event(
                    "ASSET_CHECK_EVALUATION",
                    "gold__customer_features_contract",
                    124.0,
                    checked("customer_features_contract", True),
                ),
                event("STEP_SUCCESS", "gold__customer_features_contract", 125.5),
                event("STEP_START", "models__champion", 130.0),
                event("STEP_UP_FOR_RETRY", "models__champion", 131.0, error("OSError: disk\nmore")),
                event(
                    "ASSET_MATERIALIZATION",
                    "models__champion",
                    180.0,
                    materialized(model="m", version="2", trained=True, gate="promote: beats"),
                ),
                event("STEP_SUCCESS", "models__champion", 190.0),
                event("PIPELINE_SUCCESS", None, 191.0),
            ):
                lines(e)
        write_everywhere("later")  # still this run's: the file stays the sink
    log = (tmp_path / "logs" / "run-1.log").read_text()
    for what in WRITTEN:
        assert f"inside {what}\n" in log and f"later {what}\n" in log, log
    assert log.startswith("lakescore: night 1998-02-01, Dagster run run-1, ")
    shown = printed.getvalue()
    assert "inside " not in shown and "later " not in shown, shown
    assert shown.splitlines() == [
        "night 1998-02-01 · Dagster run run-1",
        "✓ gold/customer_features           23,570 rows   22.8 s  ok",
        "✓ check customer_features_contract                2.5 s  passed",
        "↻ models/champion                                 1.0 s  retry 1: OSError: disk",
        "✓ models/champion                                60.0 s  v2 (trained: promote), "
        "after 1 retry",
        f"done in {shown.split()[-5]} s · log {tmp_path}/logs/run-1.log",
    ], shown
    assert sys.stdout is not None and os.write(1, b"") == 0  # the descriptors are back


def test_a_failed_step_is_named_with_its_error(tmp_path: Path) -> None:
    printed = io.StringIO()
    settings = Settings(data_dir=str(tmp_path))
    with (
        RunOutput(settings, console=Console(file=printed, width=120)) as out,
        out.run("run-2", title="night 1998-02-02") as lines,
    ):
        lines(event("STEP_START", "orders", 10.0))
        lines(
            event(
                "STEP_FAILURE",
                "orders",
                12.5,
                error(
                    "dagster._core.definitions.events.Failure: FileNotFoundError: landing folder "
                    "/x does not exist\n\nStack Trace: ..."
                ),
            )
        )
        lines(event("PIPELINE_FAILURE", None, 13.0))
    assert lines.succeeded is False
    assert printed.getvalue().splitlines()[1:] == [
        "✗ orders                                          2.5 s  failed: FileNotFoundError: "
        "landing folder /x does not exist"
    ]


def test_verbose_shows_everything_and_still_logs_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with (
        RunOutput(
            Settings(data_dir=str(tmp_path)), console=Console(file=io.StringIO()), verbose=True
        ) as out,
        out.run("run-3", title="night"),
    ):
        write_everywhere("loud")
    shown = capfd.readouterr().err
    log = (tmp_path / "logs" / "run-3.log").read_text()
    for what in WRITTEN:
        assert f"loud {what}\n" in shown and f"loud {what}\n" in log


def test_output_of_a_command_that_failed_before_any_run_is_shown(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with RunOutput(Settings(data_dir=str(tmp_path)), console=Console(file=io.StringIO())):
        write_everywhere("early")
    shown = capfd.readouterr()
    for what in WRITTEN:
        assert f"early {what}\n" in shown.out + shown.err
    assert not (tmp_path / "logs").exists()


def test_an_error_line_is_its_first_line_without_dagsters_failure_class() -> None:
    message = "dagster._core.definitions.events.Failure: ValueError: bad\nStack Trace:\n  x"
    assert error_line(message) == "ValueError: bad"
    assert error_line("KeyError: 'x'") == "KeyError: 'x'"
    assert error_line("") == "no message"
    assert error_line("y" * 500).endswith("…") and len(error_line("y" * 500)) == 300
