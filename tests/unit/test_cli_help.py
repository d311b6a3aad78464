from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.unit

COMMANDS = (
    "demo",
    "night",
    "backfill",
    "train",
    "sync",
    "serve",
    "status",
    "rollback",
    "history",
    "mongo",
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
