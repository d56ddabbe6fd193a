"""The events of one step, built from what it saved (no read of the database).

A saved failure comes back as the stored job (StepResult.failed); a success or a
snooze is the claimed job with the fields the step set. A queue is blocked, for
events, from its head's first failed attempt in a row that will be retried, until
that job's streak of failures ends: it succeeds, gives up, fails for good (the
queue moves on) or is cancelled. A snooze neither blocks nor unblocks. The
claimed job's ``error`` tells whether it was blocking: set by a failed attempt,
cleared only by success.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Mapping, Sequence

from ..backend import Claim, Failure, Outcome, Snoozed, StepResult, Success
from ..events import Event
from ..job import FINISHED_STATES, Job, JobState, to_datetime
from ..rows import job_state


def step_events(outcomes: Sequence[Outcome], result: StepResult, now: float,
                durations: Mapping[str, float]) -> list[Event]:
    """Events for the saved outcomes, the recovered lost attempts and the claims of a step.

    ``durations``: seconds each attempt ran, by claim token (missing: None).
    """
    at = to_datetime(now)
    assert at is not None
    rejected = {id(outcome) for outcome in result.rejected}
    failed = list(result.failed)
    events: list[Event] = []
    for outcome in outcomes:
        if id(outcome) in rejected:
            continue
        claimed = outcome.claim.job
        duration = durations.get(outcome.claim.token)
        was_blocking = claimed.error is not None
        if isinstance(outcome, Success):
            job = dataclasses.replace(claimed, state=JobState.DONE, done_at=at, error=None,
                                      next_attempt_at=None)
            events.append(Event("job_succeeded", job, at, duration))
            if was_blocking:
                events.append(Event("queue_unblocked", job, at))
        elif isinstance(outcome, Snoozed):
            events.append(Event("job_snoozed", snoozed_job(claimed, outcome.until, now), at,
                                duration))
        elif isinstance(outcome, Failure):
            saved = _take(failed, claimed.id)
            if saved is not None:  # else not saved (its claim was lost)
                kind = "job_gave_up" if outcome.give_up else "job_failed"
                events.append(Event(kind, saved, at, duration))
                events += queue_events(was_blocking, saved, at)
    for lost in failed:  # failures with no outcome: attempts recovered from lost workers
        events.append(Event("job_lost", lost, at))
        events += queue_events(failed_before(lost), lost, at)
    return events


def claim_events(claimed: Sequence[Claim], now: float) -> list[Event]:
    """job_started for each claim handed to a worker."""
    at = to_datetime(now)
    assert at is not None
    return [Event("job_started", claim.job, at) for claim in claimed]


def queue_events(was_blocking: bool, saved: Job, at: datetime) -> list[Event]:
    """queue_blocked or queue_unblocked when a saved failure changes its queue's state."""
    blocking = saved.state not in FINISHED_STATES  # retried later: its queue waits for it
    if blocking == was_blocking:
        return []
    return [Event("queue_blocked" if blocking else "queue_unblocked", saved, at)]


def failed_before(job: Job) -> bool:
    """Whether the attempt before a lost one failed too (its queue was already blocked)."""
    return len(job.errors) >= 2 and job.errors[-2]["attempt"] == job.attempts - 1


def snoozed_job(claimed: Job, until: float, now: float) -> Job:
    """The claimed job as a snooze saves it: waiting until ``until``, attempt uncounted."""
    return dataclasses.replace(
        claimed, attempts=claimed.attempts - 1, next_attempt_at=to_datetime(until),
        state=job_state("pending", claimed.scheduled_at.timestamp(), until, now))


def _take(jobs: list[Job], job_id: int) -> Job | None:
    """Remove and return the first job with this id."""
    for index, job in enumerate(jobs):
        if job.id == job_id:
            return jobs.pop(index)
    return None
