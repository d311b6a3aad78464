"""The API's own log lines and uvicorn's as JSON, one object per line, on standard error.

``api.log_format`` ``json`` (the default: what a log shipper parses) or ``text`` (uvicorn's
own format, for a terminal). ``configure_logs`` is called when the app is built, after
uvicorn configured its loggers, so it applies however uvicorn was started (``lakescore
serve``, ``uvicorn api.main:create_app --factory``): the handlers uvicorn gave its loggers
get the JSON formatter, and the ``lakescore`` loggers (the API's warnings: an open API, a
store over budget, a cold-start model that did not load) get a handler of their own at
INFO. MLflow's download progress bar is switched off (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``)
in both formats. The request log (``api.requestlog``) writes its JSON lines on its own handler.

A line: ``{"event": "...", "level": "warning", "logger": "lakescore.api.security",
"timestamp": "2026-12-07T02:00:00.123456Z"}``, with ``exception`` (the formatted traceback)
when the record carries one.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import structlog

# Loggers that come with handlers of their own: uvicorn's (its log config) and MLflow's.
HANDLED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "mlflow")
API_LOGGER = "lakescore"


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """A stdlib formatter that renders each record as one JSON object."""

    def __init__(self) -> None:
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
        )


def configure_logs(log_format: Literal["json", "text"]) -> None:
    # MLflow draws a progress bar on stderr for every model download: not a log line.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if log_format != "json":
        return
    formatter = JsonFormatter()
    for name in HANDLED_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
    api = logging.getLogger(API_LOGGER)
    own = [h for h in api.handlers if getattr(h, "lakescore_json", False)]
    if not own:  # once per process, however many apps are built
        handler = logging.StreamHandler(sys.stderr)
        handler.lakescore_json = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        api.addHandler(handler)
    if api.level == logging.NOTSET:
        api.setLevel(logging.INFO)
    api.propagate = False
