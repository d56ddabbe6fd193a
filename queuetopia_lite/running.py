"""Running one job, and the name this process gives its claims."""

from __future__ import annotations

import dataclasses
import inspect
import os
import socket
from typing import Awaitable, Callable

from .backend import BackoffFunction, Claim, Failure, Outcome, Snoozed, Success
from .control import GiveUp, Snooze
from .errortext import error_text, storable
from .performer import BoundPerformer

_owner: tuple[int, str] = (0, "")  # (pid, name): gethostname() is a system call per step


def owner_name() -> str:
    """host:pid, the worker's name in attempted_by and locked_by."""
    global _owner
    pid = os.getpid()
    if _owner[0] != pid:  # computed again in a forked child
        _owner = (pid, f"{socket.gethostname()}:{pid}")
    return _owner[1]


def perform(performer: BoundPerformer, claim: Claim, clock: Callable[[], float],
            interrupts: list[BaseException] | None = None,
            wait: Callable[[Awaitable[object]], object] | None = None) -> Outcome:
    """Run the job: its return is success, its raise (of anything) a failed attempt.

    An action that returns an awaitable (an ``async def``) is run by ``wait``
    until it ends; its result or exception is the outcome. GiveUp and Snooze
    are outcomes of their own (outcome_of_exception). A KeyboardInterrupt is also
    appended to ``interrupts`` when given, so that a foreground caller can stop
    after saving the failure.
    """
    try:
        result = performer.perform(claim.job)
        if inspect.isawaitable(result):
            if wait is None:
                raise TypeError("the action returned an awaitable where none can be awaited")
            wait(result)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too: a failed attempt
        if interrupts is not None and isinstance(exc, KeyboardInterrupt):
            interrupts.append(exc)
        return failed(performer, claim, exc, clock)
    return Success(claim)


def failed(performer: BoundPerformer, claim: Claim, exc: BaseException,
           clock: Callable[[], float]) -> Outcome:
    """The outcome of an action that raised ``exc``; never raises itself."""
    try:
        return outcome_of_exception(claim, exc, clock(), performer.safe_backoff)
    except BaseException as inner:  # never leave a claim without an outcome
        return Failure(claim, f"queuetopia_lite could not record the error: {inner!r}",
                       clock() + 1.0)


def outcome_of_exception(claim: Claim, exc: BaseException, now: float,
                         backoff: BackoffFunction) -> Outcome:
    """What an action's exception means: Snooze, GiveUp, or a failed attempt retried later."""
    if isinstance(exc, Snooze):
        return Snoozed(claim, now + exc.seconds)
    if isinstance(exc, GiveUp):
        return Failure(claim, storable(exc.reason), now, give_up=True)  # any text, as a raise
    return Failure(claim, error_text(exc), now + backoff(claim.job))


def with_plain_error(outcome: Outcome, exc: BaseException) -> Outcome:
    """``outcome`` with an error text any database stores, for when saving its own
    text raised ``exc``: a failure keeps its kind (give_up, keep_lock), only its text
    changes; other outcomes carry no text and are returned as they are."""
    if not isinstance(outcome, Failure):
        return outcome
    return dataclasses.replace(outcome, error="queuetopia_lite could not store this "
                               f"attempt's error ({type(exc).__name__})")
