"""The `worker` command: load the user's performer and run jobs until told to stop."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import time
from typing import Any, Awaitable

from ..job import Job, JobState
from .render import first_line, span

log = logging.getLogger("queuetopia_lite.cli")

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class PerformerLoadError(Exception):
    """The performer named on the command line cannot be loaded (exit status 1)."""


def load_performer(spec: str) -> Any:
    """The object named by 'module:attribute' (the attribute may be dotted)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PerformerLoadError(
            f"--performer {spec!r}: expected MODULE:ATTRIBUTE, e.g. myapp.jobs:performer")
    # As with `python -m`, the current folder is importable: the console script's
    # own sys.path[0] is its bin folder, where the user's modules never are.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PerformerLoadError(f"--performer {spec!r}: cannot import {module_name!r}: "
                                 f"{exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise PerformerLoadError(f"--performer {spec!r}: importing {module_name!r} raised "
                                 f"{type(exc).__name__}: {first_line(str(exc))}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PerformerLoadError(
                f"--performer {spec!r}: {module_name!r} has no attribute {attribute!r}") from None
    if not callable(getattr(target, "perform", None)) and not callable(target):
        raise PerformerLoadError(f"--performer {spec!r}: not a performer (expected a "
                                 "callable(job) or an object with .perform(job))")
    return target


class LoggingPerformer:
    """The user's performer, logging each job's start, end and failure.

    It offers ``backoff`` only when the user's performer does, so the default
    backoff still applies to performers without one.
    """

    def __init__(self, performer: Any) -> None:
        perform = getattr(performer, "perform", None)
        self._perform = perform if callable(perform) else performer
        self._on_failure = getattr(performer, "handle_failed_job", None)
        backoff = getattr(performer, "backoff", None)
        if backoff is not None:
            self.backoff = backoff
        defaults = getattr(performer, "defaults", None)
        if callable(defaults):
            self.defaults = defaults
        is_async = getattr(performer, "is_async", None)
        if callable(is_async):  # async actions go straight to the scheduler's event loop
            self.is_async = is_async
        self.periodics = getattr(performer, "periodics", [])

    def perform(self, job: Job) -> object:
        """Run the job through the user's performer; log how it went."""
        log.debug("job %s started: %s/%s attempt %s", job.id, job.queue, job.action, job.attempts)
        start = time.monotonic()
        result = self._perform(job)
        if inspect.isawaitable(result):  # an async action: done once awaited
            return self._logged(job, start, result)
        log.info("job %s done: %s/%s in %.3f s", job.id, job.queue, job.action,
                 time.monotonic() - start)
        return result

    async def _logged(self, job: Job, start: float, awaitable: Awaitable[object]) -> object:
        result = await awaitable
        log.info("job %s done: %s/%s in %.3f s", job.id, job.queue, job.action,
                 time.monotonic() - start)
        return result

    def handle_failed_job(self, job: Job) -> None:
        """Log the failure (with the next retry), then call the user's hook if any."""
        error = first_line(job.error)
        if job.state == JobState.FAILED:
            log.error("job %s failed for good: %s/%s after %s attempts: %s", job.id, job.queue,
                      job.action, job.attempts, error)
        else:
            wait = "?" if job.next_attempt_at is None else span(
                job.next_attempt_at.timestamp() - time.time())
            log.warning("job %s failed: %s/%s attempt %s/%s: %s (retry in %s; the queue waits)",
                        job.id, job.queue, job.action, job.attempts, job.max_attempts, error, wait)
        if self._on_failure is not None:
            self._on_failure(job)


class StderrLogging:
    """Log records of every logger to stderr while a worker runs, then undo it.

    The root logger is used so the performer's own log lines show too; undoing
    keeps in-process callers (tests, embedding scripts) unchanged.
    """

    def __init__(self, level: str) -> None:
        self.level = getattr(logging, level)
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self._previous = logging.NOTSET

    def __enter__(self) -> StderrLogging:
        root = logging.getLogger()
        self._previous = root.level
        root.setLevel(self.level)
        root.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._previous)
