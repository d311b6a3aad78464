from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.unit

COMMANDS = (
    "demo",
    "generate",
    "night",
    "backfill",
    "train",
    "sync",
    "publish",
    "serve",
    "status",
    "rollback",
    "history",
    "sql",
    "mongo",
    "resort-silver",
    "retention",
)


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_a_bad_date_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["night", "--date", "1997-13-45"])
    assert result.exit_code == 2
    assert "--date" in result.output


def test_backfill_refuses_an_inverted_range() -> None:
    result = CliRunner().invoke(app, ["backfill", "--start", "1998-01-10", "--end", "1998-01-01"])
    assert result.exit_code == 2
    assert "before start" in result.output


def test_generate_writes_landing_files(tmp_path: Path) -> None:
    out = tmp_path / "landing"
    args = ["generate", "--customers", "300", "--days", "60", "--seed", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "300 customers" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["customers", "orders"]
    assert list((out / "orders").glob("*.parquet"))


def test_generate_refuses_an_unknown_format(tmp_path: Path) -> None:
    args = [
        "generate",
        "--customers",
        "5",
        "--days",
        "5",
        "--out",
        str(tmp_path),
        "--format",
        "xls",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "file_format must be 'csv' or 'parquet'" in result.output
