"""Performers: what runs a job. A registry of actions, or any callable."""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol, TypeVar, Union, runtime_checkable

from .backend import MAX_DURATION, default_backoff
from .errors import UnknownActionError
from .job import Job

log = logging.getLogger("queuetopia_lite")

Action = Callable[[Job], object]
F = TypeVar("F", bound=Action)


@runtime_checkable
class PerformerLike(Protocol):
    """An object with ``perform(job)``; ``backoff`` and ``handle_failed_job`` are optional."""

    def perform(self, job: Job) -> object:
        """Run the job: a return is success, a raise is failure."""
        ...


PerformerArg = Union[PerformerLike, Action]


class Performer:
    """A registry of actions by name; an unknown action fails the job.

    Example:
        performer = Performer()

        @performer.action("send_mail")
        def send_mail(job: Job) -> None: ...
    """

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def action(self, name: str) -> Callable[[F], F]:
        """Decorator: register the function as the action ``name``."""
        def register(fn: F) -> F:
            self.register(name, fn)
            return fn
        return register

    def register(self, name: str, fn: Action) -> None:
        """Register ``fn`` as the action ``name`` (replacing any earlier one)."""
        if not isinstance(name, str) or not name:
            raise ValueError("action name: must be a non-empty string")
        self._actions[name] = fn

    @property
    def actions(self) -> list[str]:
        """The registered action names."""
        return sorted(self._actions)

    def perform(self, job: Job) -> object:
        """Run the job's action; raise UnknownActionError if none is registered."""
        fn = self._actions.get(job.action)
        if fn is None:
            raise UnknownActionError(job.action)
        return fn(job)


class BoundPerformer:
    """The user's performer seen through one interface, with defaults filled in."""

    def __init__(self, performer: Any) -> None:
        perform = getattr(performer, "perform", None)
        if callable(perform):
            self.perform: Action = perform
        elif callable(performer):
            self.perform = performer
        else:
            from .errors import InvalidJobError

            raise InvalidJobError(
                "performer", "expected a callable(job) or an object with .perform(job)")
        self._backoff = getattr(performer, "backoff", None)
        self._on_failure = getattr(performer, "handle_failed_job", None)

    @property
    def has_backoff(self) -> bool:
        """Whether the performer has its own backoff(job) (else the default formula)."""
        return self._backoff is not None

    def backoff(self, job: Job) -> float:
        """Seconds before the next attempt of a job that just failed."""
        if self._backoff is None:
            return default_backoff(job)
        value = float(self._backoff(job))
        if value != value or value < 0:  # NaN or negative: fall back, do not hot-loop
            return default_backoff(job)
        return min(value, MAX_DURATION)  # inf would be no instant at all

    def safe_backoff(self, job: Job) -> float:
        """backoff(job), or the default one if the performer's raises."""
        try:
            return self.backoff(job)
        except Exception:
            log.exception("queuetopia_lite: the performer's backoff() raised; using the default")
            return default_backoff(job)

    def handle_failed_job(self, job: Job) -> None:
        """Call the performer's handle_failed_job(job), if it has one."""
        if self._on_failure is not None:
            self._on_failure(job)
