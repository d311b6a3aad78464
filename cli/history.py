"""One customer's prediction history, read Spark-free through delta-rs (``deltalake``).

``customer_history(settings, customer_id=...)`` returns the rows, newest first;
``history`` is the command (``lakescore history C0000042 [--model-role all] [--limit 30]
[--json]``) that the main CLI mounts.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.errors import fail, load_settings, out
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_HISTORY

COLUMNS = (
    "score_date",
    "model_role",
    "model_version",
    "score",
    "reasons",
    "run_id",
    "feature_table_version",
)


def customer_history(
    settings: Settings,
    *,
    customer_id: str,
    model_role: str | None = "champion",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``predictions.history`` for one customer (this model), newest date first."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    filters: list[tuple[str, str, Any]] = [
        ("customer_id", "=", customer_id),
        ("model_name", "=", settings.model.name),
    ]
    if model_role is not None:
        filters.append(("model_role", "=", model_role))
    try:
        table = DeltaTable(settings.table_path(PREDICTIONS_HISTORY.name))
    except TableNotFoundError as exc:
        raise LookupError(
            f"{PREDICTIONS_HISTORY.name} does not exist yet: score a night first"
        ) from exc
    rows = table.to_pyarrow_table(filters=filters).to_pylist()  # type: ignore[arg-type]
    rows.sort(key=lambda r: (r["score_date"], r["model_role"]), reverse=True)
    return rows[:limit] if limit else rows


def history(
    customer_id: Annotated[str, typer.Argument(help="The customer id.")],
    model_role: Annotated[
        str, typer.Option(help="champion, challenger, or all (both).")
    ] = "champion",
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 30,
    as_json: Annotated[
        bool, typer.Option("--json", help="The rows as a JSON list (dates as YYYY-MM-DD).")
    ] = False,
) -> None:
    """Show one customer's prediction history (newest first)."""
    settings = load_settings()
    try:
        rows = customer_history(
            settings,
            customer_id=customer_id,
            model_role=None if model_role == "all" else model_role,
            limit=limit,
        )
    except LookupError as exc:
        raise fail(str(exc)) from exc
    if not rows:
        raise fail(f"no predictions for customer {customer_id!r} ({settings.model.name})")
    if as_json:
        shown = [{c: _plain(row.get(c)) for c in COLUMNS} for row in rows]
        out.out(json.dumps(shown, indent=2), highlight=False)
        return
    table = Table(title=f"{customer_id}: {settings.model.name}")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(c, row.get(c)) for c in COLUMNS])
    out.print(table)


def _cell(column: str, value: Any) -> str:
    if column == "score":
        return f"{value:.4f}"
    if column == "reasons":  # "recency_days=41 (-0.82)", one per line, largest first
        return "\n".join(_reason(r) for r in value or []) or "-"
    return str(value)


def _reason(reason: dict[str, Any]) -> str:
    value = reason.get("value")
    shown = "missing" if value is None else f"{value:g}"
    return f"{reason['feature']}={shown} ({reason['contribution']:+.3f})"


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value
