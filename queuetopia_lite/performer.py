"""Performers: what runs a job. A registry of actions, or any callable."""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Mapping, Protocol, TypeVar, Union, runtime_checkable

from . import validation as check
from .backend import MAX_DURATION, default_backoff
from .errors import InvalidJobError, UnknownActionError
from .job import Job

log = logging.getLogger("queuetopia_lite")

Action = Callable[[Job], object]
F = TypeVar("F", bound=Action)
Backoff = Union[Callable[[Job], float], float, int]
MAX_NAMED_ACTIONS = 10  # actions named in an unknown action's message


@runtime_checkable
class PerformerLike(Protocol):
    """An object with ``perform(job)``.

    Optional: ``backoff(job)``, ``handle_failed_job(job)``, ``defaults(action)`` (the
    job options of an action; raises InvalidJobError("action") for an unknown one),
    ``is_async(action)`` (whether ``perform`` returns a coroutine for that action,
    so the job goes straight to the scheduler's event loop) and ``periodics``
    (periodic definitions), as ``Performer`` has them.
    """

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
        self._defaults: dict[str, dict[str, Any]] = {}  # job options by action
        self._backoffs: dict[str, Backoff] = {}
        # Periodic definitions (name, schedule, queue, action, params), adopted by every
        # Queuetopia holding this performer: a worker's module declares them here.
        self.periodics: list[tuple[str, Any, str, str, Mapping[str, Any] | None]] = []

    def action(self, name: str, *, max_attempts: Any = check.NOT_GIVEN,
               timeout: Any = check.NOT_GIVEN, max_backoff: Any = check.NOT_GIVEN,
               backoff: Backoff | None = None) -> Callable[[F], F]:
        """Decorator: register the function as the action ``name``.

        The options are defaults for this action's jobs, created by a Queuetopia
        holding this performer, unless the create call gives its own.
        ``backoff`` is seconds before a retry: a number, or a function of the job
        that just failed (``max_backoff`` does not cap it); default: the formula.

        Raises:
            InvalidJobError: a bad option (the message names it).
        """
        options = _checked_options(max_attempts=max_attempts, timeout=timeout,
                                   max_backoff=max_backoff, backoff=backoff)

        def register(fn: F) -> F:
            self.register(name, fn)
            self._defaults[name] = options
            if backoff is not None:
                self._backoffs[name] = backoff
            return fn
        return register

    def register(self, name: str, fn: Action) -> None:
        """Register ``fn`` as the action ``name`` (replacing any earlier one, and its options)."""
        if not isinstance(name, str) or not name:
            raise ValueError("action name: must be a non-empty string")
        self._actions[name] = fn
        self._defaults.pop(name, None)
        self._backoffs.pop(name, None)

    def periodic(self, name: str, schedule: Any, queue: str, action: str,
                 params: Mapping[str, Any] | None = None) -> None:
        """Declare a periodic job for every Queuetopia holding this performer.

        The same as ``Queuetopia.periodic``, declared once in the module that defines
        the actions (so ``queuetopia-lite worker --performer module:performer`` runs it).
        Checked when a Queuetopia takes this performer.
        """
        self.periodics.append((name, schedule, queue, action, params))

    @property
    def actions(self) -> list[str]:
        """The registered action names."""
        return sorted(self._actions)

    def defaults(self, action: str) -> Mapping[str, Any]:
        """The job options given to ``action`` (only those given).

        Raises:
            InvalidJobError: the action is not registered (names the known ones).
        """
        if action not in self._actions:
            known = self.actions
            listed = ", ".join(known[:MAX_NAMED_ACTIONS]) or "none"
            extra = len(known) - MAX_NAMED_ACTIONS
            more = f" and {extra} more" if extra > 0 else ""
            raise InvalidJobError("action", f"unknown action {action!r}; this performer knows "
                                  f"{listed}{more}")
        return self._defaults.get(action, {})

    def backoff(self, job: Job) -> float:
        """Seconds before the next attempt: the job's action's ``backoff``, else the formula."""
        chosen = self._backoffs.get(job.action)
        if chosen is None:
            return default_backoff(job)
        if callable(chosen):
            return float(chosen(job))
        return float(chosen)

    def is_async(self, action: str) -> bool:
        """Whether ``action`` is an ``async def`` (awaited on the scheduler's event loop)."""
        return inspect.iscoroutinefunction(self._actions.get(action))

    def perform(self, job: Job) -> object:
        """Run the job's action; raise UnknownActionError if none is registered.

        An async action's coroutine is returned, for the scheduler to await.
        """
        fn = self._actions.get(job.action)
        if fn is None:
            raise UnknownActionError(job.action)
        return fn(job)


def _checked_options(*, max_attempts: Any, timeout: Any, max_backoff: Any,
                     backoff: Backoff | None) -> dict[str, Any]:
    """The job options given to Performer.action, checked (InvalidJobError names a bad one)."""
    options: dict[str, Any] = {}
    if max_attempts is not check.NOT_GIVEN:
        options["max_attempts"] = check.count("max_attempts", max_attempts)
    if timeout is not check.NOT_GIVEN:
        options["timeout"] = check.optional_duration("timeout", timeout, allow_zero=False)
    if max_backoff is not check.NOT_GIVEN:
        options["max_backoff"] = check.duration("max_backoff", max_backoff)
    if backoff is not None and not callable(backoff):
        check.duration("backoff", backoff)
    return options


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
        # Async actions go straight to the event loop; any other action returning an
        # awaitable is handed there by the worker thread that called it.
        is_async = getattr(performer, "is_async", None)
        self._async_action: Callable[[str], bool] | None = (
            is_async if callable(is_async) else None)
        self._async = inspect.iscoroutinefunction(self.perform)
        self._backoff = getattr(performer, "backoff", None)
        self._on_failure = getattr(performer, "handle_failed_job", None)
        # A Performer knows its actions: unknown ones are refused at enqueue.
        defaults = getattr(performer, "defaults", None)
        self.defaults: check.DefaultsFor = defaults if callable(defaults) else check.no_defaults
        self.periodics: list[Any] = list(getattr(performer, "periodics", []))

    def is_async(self, job: Job) -> bool:
        """Whether the job's action is a coroutine function (known before calling it).

        A performer's ``is_async`` that raises counts as False: the job then runs on a
        worker thread, which awaits any awaitable it gets all the same.
        """
        if self._async_action is not None:
            try:
                return bool(self._async_action(job.action))
            except Exception:
                log.exception("queuetopia_lite: the performer's is_async() raised")
                return False
        return self._async

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
