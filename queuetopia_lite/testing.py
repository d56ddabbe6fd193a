"""Test helpers, like the original's: assert that code under test created jobs.

Example:
    from queuetopia_lite.testing import assert_job_created, refute_job_created

    assert_job_created(q, queue="mails", action="send_mail", params={"to": "a@b.c"})
    refute_job_created(q, queue="sms")
"""

from __future__ import annotations

from typing import Any, Mapping

from .job import Job
from .queuetopia import Queuetopia

_SCAN_LIMIT = 100_000  # jobs read per check; a test never creates more


def jobs_created(q: Queuetopia, *, queue: str | None = None, action: str | None = None,
                 params: Mapping[str, Any] | None = None) -> list[Job]:
    """This Queuetopia's jobs (its scope only) matching queue, action and a params subset."""
    jobs = q.list_jobs(queue=queue, action=action, limit=_SCAN_LIMIT)
    if params:
        jobs = [job for job in jobs if _contains(job.params, params)]
    return list(reversed(jobs))  # oldest first


def assert_job_created(q: Queuetopia, count: int = 1, *, queue: str | None = None,
                       action: str | None = None,
                       params: Mapping[str, Any] | None = None) -> list[Job]:
    """Assert that exactly ``count`` matching jobs exist; return them, oldest first."""
    jobs = jobs_created(q, queue=queue, action=action, params=params)
    if len(jobs) != count:
        raise AssertionError(_message(q, count, len(jobs), queue, action, params))
    return jobs


def refute_job_created(q: Queuetopia, *, queue: str | None = None, action: str | None = None,
                       params: Mapping[str, Any] | None = None) -> None:
    """Assert that no matching job exists."""
    assert_job_created(q, 0, queue=queue, action=action, params=params)


def _contains(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return all(key in actual and actual[key] == value for key, value in expected.items())


def _message(q: Queuetopia, expected: int, got: int, queue: str | None, action: str | None,
             params: Mapping[str, Any] | None) -> str:
    noun = "jobs" if expected > 1 else "job"
    attrs = {k: v for k, v in (("queue", queue), ("action", action), ("params", params)) if v}
    if not attrs:
        return f"Expected {expected} {noun} in scope {q.scope!r}, got {got}"
    shown = ", ".join(f"{k}={v!r}" for k, v in attrs.items())
    return f"Expected {expected} {noun} with {shown} in scope {q.scope!r}, got {got}"
