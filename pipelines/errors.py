"""Telling Dagster which failures are worth a retry.

Steps retry on failure (transient database or file-system trouble). Errors that
a retry cannot fix (a missing feature partition, no champion, a contract
violation) are re-raised as ``Failure(allow_retries=False)`` so the run stops at
once with the message that names the problem.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Failure


@contextmanager
def permanent_errors(*errors: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except errors as exc:
        raise Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
