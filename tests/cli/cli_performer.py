"""A performer for the CLI tests, importable as ``cli_performer:performer``.

Actions: ``ok`` returns; ``fail`` raises RuntimeError(params["message"]);
``wait_for_file`` returns once params["path"] exists. Retries wait
params["backoff"] seconds (default an hour), so a failed job keeps its queue
blocked for the whole test.
"""

from __future__ import annotations

import os
import time

from queuetopia_lite import GiveUp, Job, Performer

WAIT_LIMIT = 60.0  # seconds: a wait_for_file job gives up (fails) after this


class ParamsBackoffPerformer(Performer):
    """A Performer whose backoff comes from the job's params."""

    def backoff(self, job: Job) -> float:
        return float(job.params.get("backoff", 3600))


performer = ParamsBackoffPerformer()
not_a_performer = 42


@performer.action("ok")
def ok(job: Job) -> None:
    return None


@performer.action("fail")
def fail(job: Job) -> None:
    raise RuntimeError(job.params.get("message", "boom"))


@performer.action("wait_for_file")
def wait_for_file(job: Job) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not os.path.exists(job.params["path"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job.params['path']} never appeared")
        time.sleep(0.01)


@performer.action("charge", max_attempts=5, timeout=30.0)
def charge(job: Job) -> None:
    raise GiveUp("card expired")
