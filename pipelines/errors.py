"""Telling Dagster which failures are worth a retry.

Steps retry on failure (transient database or file-system trouble). Errors that
a retry cannot fix (a missing feature partition, no champion, features that do
not fit the model, a sync that refuses to run) are re-raised as
``Failure(allow_retries=False)`` so the run stops at once with the message that
names the problem. ``retryable`` keeps subclasses that are transient (a Mongo
batch that failed after its own retries) on the retry path.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Failure


def permanent_failure(description: str) -> Failure:
    """A failure no retry can fix: the step fails once, with ``description``."""
    return Failure(description=description, allow_retries=False)


@contextmanager
def permanent_errors(
    *errors: type[BaseException], retryable: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    try:
        yield
    except retryable:
        raise
    except errors as exc:
        raise permanent_failure(f"{type(exc).__name__}: {exc}") from exc
