"""Jobs that kill their process, raise BaseExceptions or never return: counted, backed off."""

from __future__ import annotations

import itertools

from queuetopia_lite import JobState, Queuetopia

from ..conftest import wait_until
from .procs import Line, Workers

BACKOFF = 0.3


def starts(lines: list[Line], job_id: int) -> list[Line]:
    return [ln for ln in lines if ln.job_id == job_id and ln.kind == "start"]


def assert_backed_off(attempts: list[Line]) -> None:
    """Each attempt began at least the backoff after the one before: no hot loop."""
    for before, after in itertools.pairwise(attempts):
        assert after.at - before.at >= BACKOFF, f"attempt {after.attempt} came too soon"


def test_job_that_exits_the_process_is_counted_backed_off_and_gives_up(
        workers: Workers) -> None:
    q = Queuetopia(workers.db, durability="normal")
    poison = q.create_job("poison", "exit", {"n": 0}, max_attempts=3)
    after = q.create_job("poison", "ok", {"n": 1})
    others = q.create_jobs([("other", "ok", {"n": n}) for n in range(20)])
    options = ("--lease", "1", "--backoff", str(BACKOFF), "--max-workers", "2")
    workers.start(*options)
    deaths = 0

    def settled() -> bool:
        nonlocal deaths
        for proc in workers.procs:
            if proc.returncode is None and proc.poll() is not None:
                deaths += 1
                assert proc.returncode == 7  # os._exit(7) in the job
        if not workers.alive():
            workers.start(*options)  # a supervisor restarts the dead worker
        return q.count_jobs()[JobState.DONE] == 21

    wait_until(settled, timeout=60, message="every other job done")
    job = q.get_job(poison.id)
    assert job is not None and job.state == JobState.FAILED and job.attempts == 3
    assert job.error is not None and job.error.startswith("worker lost")
    attempts = starts(workers.log("poison"), poison.id)
    assert [ln.attempt for ln in attempts] == [1, 2, 3]  # once per attempt, never more
    assert deaths == 3
    assert_backed_off(attempts)
    assert (q.get_job(after.id) or after).state == JobState.DONE
    assert all((q.get_job(j.id) or j).state == JobState.DONE for j in others)


def test_system_exit_interrupt_and_a_job_that_never_returns(workers: Workers) -> None:
    q = Queuetopia(workers.db, durability="normal")
    sysexit = q.create_job("sysexit", "system_exit", {"n": 0}, max_attempts=3)
    interrupt = q.create_job("interrupt", "interrupt", {"n": 0}, max_attempts=3)
    hang = q.create_job("hang", "hang_once", {"n": 0}, timeout=0.3)
    hang_next = q.create_job("hang", "ok", {"n": 1})
    others = q.create_jobs([("other", "ok", {"n": n}) for n in range(20)])
    # One worker slot: the hanging thread must not keep the other queues waiting.
    worker = workers.start("--lease", "1", "--backoff", str(BACKOFF), "--max-workers", "1")

    def state(job_id: int) -> JobState | None:
        job = q.get_job(job_id)
        return None if job is None else job.state

    wait_until(lambda: state(sysexit.id) == state(interrupt.id) == JobState.FAILED
               and all(state(j.id) == JobState.DONE for j in others),
               timeout=60, message="raising jobs exhausted, other queue drained")
    for job, name in ((sysexit, "SystemExit"), (interrupt, "KeyboardInterrupt")):
        stored = q.get_job(job.id)
        assert stored is not None and stored.attempts == 3
        assert stored.error is not None and name in stored.error
        attempts = starts(workers.log(job.queue), job.id)
        assert [ln.attempt for ln in attempts] == [1, 2, 3]
        assert_backed_off(attempts)
    assert worker.poll() is None  # neither exception ended the worker
    # The runaway: its timeout is a recorded failed attempt; its queue stays locked while
    # its thread lives, so the next attempt and the next job wait.
    hung = q.get_job(hang.id)
    assert hung is not None and hung.attempts == 1
    assert hung.error is not None and hung.error.startswith("timeout")
    assert [ln.kind for ln in workers.log("hang")] == ["start"]
    assert state(hang_next.id) != JobState.DONE
    # Only the end of the runaway's process frees the queue (lease expiry), then it moves on.
    workers.kill(worker)
    workers.start("--lease", "1", "--backoff", str(BACKOFF))
    wait_until(lambda: state(hang_next.id) == JobState.DONE, timeout=30,
               message="hang queue moves on")
    assert [(ln.kind, ln.n, ln.attempt) for ln in workers.log("hang")] == [
        ("start", 0, 1), ("start", 0, 2), ("end", 0, 2), ("start", 1, 1), ("end", 1, 1)]
    assert workers.read("overlaps") == ""
