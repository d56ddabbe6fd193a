"""Exceptions an action raises to steer its job: give up now, or run again later."""

from __future__ import annotations

from datetime import timedelta

from .validation import Duration, duration


class GiveUp(Exception):
    """Raised by an action: this job will never succeed, fail it now.

    The job becomes ``failed`` at once (its attempts kept, ``error`` = the reason,
    ``handle_failed_job`` called) and its queue moves on without a backoff wait.

    Example:
        if card_expired:
            raise GiveUp("card expired")
    """

    def __init__(self, reason: object = "gave up") -> None:
        super().__init__(reason)
        self.reason = str(reason) or "gave up"


class Snooze(Exception):
    """Raised by an action: not an error, run this job again in ``seconds``.

    The job stays its queue's head and waits; the attempt does not count toward
    ``max_attempts`` and nothing is added to ``errors``.

    Example:
        if device_offline:
            raise Snooze(60)

    Raises:
        InvalidJobError: ``seconds`` is negative, not finite or over 100 years
            (raised inside the action, so the attempt fails with that error).
    """

    def __init__(self, seconds: Duration | timedelta) -> None:
        self.seconds = duration("seconds", seconds)
        super().__init__(f"snooze for {self.seconds:g} s")
