"""Where the command line writes, and what its exit codes mean.

Results go to standard output, errors to standard error, so ``lakescore status --json |
jq`` and a cron mail of the errors alone both work. Exit codes (``lakescore --help``):

- ``0`` done;
- ``1`` the work failed or was refused: a night or a step failed, a lease is held, a
  customer or a table is not found, a rollback or a publication was refused;
- ``2`` the command was wrong: an unknown option or a bad value (Click's usage errors),
  a configuration that does not load.
"""

from __future__ import annotations

import typer
from rich.console import Console

from schemas.settings import Settings, get_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 the work failed or was refused (a failed night, a held lease, "
    "not found); 2 a usage or configuration error. Errors go to standard error."
)

# Rich resolves sys.stdout / sys.stderr at every print, so a test runner's capture works.
out = Console()
err = Console(stderr=True)


def fail(message: str, *, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``message`` to standard error; the caller raises the returned exit."""
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code=code)


def load_settings() -> Settings:
    """The settings, or a usage exit (2) naming what does not load."""
    try:
        return get_settings()
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(code=EXIT_USAGE) from exc
