"""Running one job, and the name this process gives its claims."""

from __future__ import annotations

import os
import socket
from typing import Callable

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
            interrupts: list[BaseException] | None = None) -> Outcome:
    """Run the job: its return is success, its raise (of anything) a failed attempt.

    GiveUp and Snooze are outcomes of their own (outcome_of_exception). A
    KeyboardInterrupt is also appended to ``interrupts`` when given, so that a
    foreground caller can stop after saving the failure.
    """
    try:
        performer.perform(claim.job)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too: a failed attempt
        if interrupts is not None and isinstance(exc, KeyboardInterrupt):
            interrupts.append(exc)
        try:
            return outcome_of_exception(claim, exc, clock(), performer.safe_backoff)
        except BaseException as inner:  # never leave a claim without an outcome
            return Failure(claim, f"queuetopia_lite could not record the error: {inner!r}",
                           clock() + 1.0)
    return Success(claim)


def outcome_of_exception(claim: Claim, exc: BaseException, now: float,
                         backoff: BackoffFunction) -> Outcome:
    """What an action's exception means: Snooze, GiveUp, or a failed attempt retried later."""
    if isinstance(exc, Snooze):
        return Snoozed(claim, now + exc.seconds)
    if isinstance(exc, GiveUp):
        return Failure(claim, storable(exc.reason), now, give_up=True)  # any text, as a raise
    return Failure(claim, error_text(exc), now + backoff(claim.job))
