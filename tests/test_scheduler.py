"""The scheduler with real threads on real databases: order, blocking, timing, isolation."""

from __future__ import annotations

import threading

import pytest

from queuetopia_lite import Job, JobState, QueueState, Queuetopia

from .conftest import MakeQ, wait_until
from .recorder import Recorder


def state_of(q: Queuetopia, job: Job) -> JobState:
    stored = q.get_job(job.id)
    assert stored is not None
    return stored.state


def test_created_job_starts_at_once_without_waiting_for_a_poll(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec, poll_interval=3600)
    with q:
        wait_until(lambda: q.queues() == [], message="the first poll")  # scheduler is idle
        job = q.create_job("a", "ok")
        wait_until(lambda: state_of(q, job) == JobState.DONE, message="job done")


def test_each_queue_runs_in_order_one_at_a_time(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec, max_workers=4)
    q.create_jobs([(f"q{i % 6}", "sleep", {"n": i, "seconds": 0.002}) for i in range(120)])
    with q:
        wait_until(lambda: rec.count() == 120, message="all jobs")
    assert rec.overlaps == []
    for i in range(6):
        assert rec.order(f"q{i}") == list(range(i, 120, 6))
    assert all(j.state == JobState.DONE for j in q.list_jobs(limit=200))


def test_failing_job_blocks_its_queue_until_it_succeeds(make_q: MakeQ) -> None:
    rec = Recorder(backoff=0.2)
    q = make_q(rec)
    head = q.create_job("pay", "fail_until", {"n": 0, "succeed_at": 3})
    q.create_job("pay", "ok", {"n": 1})
    q.create_jobs([("mail", "ok", {"n": i}) for i in range(5)])
    with q:
        wait_until(lambda: rec.order("pay") == [0, 0, 0, 1], message="pay queue")
        wait_until(lambda: rec.count("mail") == 5, message="mails")
    done = q.get_job(head.id)
    assert done is not None and done.state == JobState.DONE and done.attempts == 3
    assert done.error is None
    assert [j.attempts for j in rec.failed_hooks] == [1, 2]


def test_other_queues_flow_while_one_is_blocked(make_q: MakeQ) -> None:
    rec = Recorder(backoff=3600)
    q = make_q(rec, max_workers=1)
    blocker = q.create_job("pay", "fail")
    behind = q.create_job("pay", "ok")
    q.create_jobs([("mail", "ok", {"n": i}) for i in range(10)])
    with q:
        wait_until(lambda: rec.count("mail") == 10, message="mails while pay is blocked")
        assert state_of(q, blocker) == JobState.RETRYING
        assert state_of(q, behind) == JobState.AVAILABLE
        (pay,) = [s for s in q.queues() if s.queue == "pay"]
        assert pay.state == QueueState.BLOCKED and pay.head is not None
        assert pay.head.id == blocker.id


def test_handle_failed_job_gets_the_updated_job(make_q: MakeQ) -> None:
    rec = Recorder(backoff=60)
    q = make_q(rec)
    job = q.create_job("a", "fail")
    with q:
        wait_until(lambda: rec.failed_hooks, message="the hook")
    (seen,) = rec.failed_hooks
    assert seen.id == job.id and seen.attempts == 1 and seen.state == JobState.RETRYING
    assert seen.error is not None and seen.error.startswith("RuntimeError: boom 1")
    assert "Traceback" in seen.error
    assert seen.next_attempt_at is not None and seen.attempted_at is not None
    assert abs((seen.next_attempt_at - seen.attempted_at).total_seconds() - 60) < 5


def test_a_raising_failure_hook_does_not_stop_the_queue(make_q: MakeQ) -> None:
    class Grumpy(Recorder):
        def handle_failed_job(self, job: Job) -> None:
            super().handle_failed_job(job)
            raise ValueError("hook broke")

    rec = Grumpy(backoff=0.05)
    q = make_q(rec)
    first = q.create_job("a", "fail_until", {"succeed_at": 2})
    second = q.create_job("a", "ok")
    with q:
        wait_until(lambda: state_of(q, second) == JobState.DONE, message="second job")
    stored = q.get_job(first.id)
    assert stored is not None and stored.attempts == 2 and stored.state == JobState.DONE


def test_default_backoff_is_used_without_a_performer_backoff(make_q: MakeQ) -> None:
    seen: list[Job] = []

    def perform(job: Job) -> None:
        seen.append(job)
        raise RuntimeError("no")

    q = make_q(perform)
    job = q.create_job("a", "x")
    with q:
        wait_until(lambda: state_of(q, job) == JobState.RETRYING, message="retrying")
    stored = q.get_job(job.id)
    assert stored is not None and stored.attempted_at and stored.next_attempt_at
    assert abs((stored.next_attempt_at - stored.attempted_at).total_seconds() - 2.0) < 0.5


def test_unknown_action_is_a_job_failure(make_q: MakeQ) -> None:
    rec = Recorder(backoff=60)
    q = make_q(rec)
    # Created where the Performer is not known (a Queuetopia holding one refuses it).
    job = make_q(None).create_job("a", "nope")
    with q:
        wait_until(lambda: state_of(q, job) == JobState.RETRYING, message="failure")
    stored = q.get_job(job.id)
    assert stored is not None and stored.error == "unknown action 'nope'"


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_system_exit_and_keyboard_interrupt_in_a_job_are_failures(make_q: MakeQ,
                                                                   kind: str) -> None:
    rec = Recorder(backoff=60)
    q = make_q(rec)
    job = q.create_job("a", "raise_base", {"kind": kind})
    other = q.create_job("b", "ok")
    with q:
        wait_until(lambda: state_of(q, job) == JobState.RETRYING, message="failure")
        wait_until(lambda: state_of(q, other) == JobState.DONE, message="other queue")
    stored = q.get_job(job.id)
    assert stored is not None and stored.error is not None and stored.error.startswith(kind)


def test_timeout_records_failure_keeps_queue_locked_and_frees_the_worker(make_q: MakeQ) -> None:
    rec = Recorder(backoff=0.0)
    q = make_q(rec, max_workers=1)
    stuck = q.create_job("slow", "wait", timeout=0.2)
    behind = q.create_job("slow", "ok")
    with q:
        wait_until(lambda: ((q.get_job(stuck.id) or stuck).error or "").startswith("timeout"),
                   message="the timeout recorded")
        stored = q.get_job(stuck.id)
        assert stored is not None and stored.error is not None
        assert stored.error.startswith("timeout") and stored.attempts == 1
        # One worker, and it is stuck: other queues must still run.
        others = q.create_jobs([("fast", "ok", {"n": i}) for i in range(3)])
        wait_until(lambda: all(state_of(q, j) == JobState.DONE for j in others),
                   message="other queue with the only worker stuck")
        (slow,) = [s for s in q.queues() if s.queue == "slow"]
        assert slow.state == QueueState.RUNNING  # still locked by the runaway
        assert state_of(q, behind) == JobState.AVAILABLE
        assert rec.order("slow") == [None]  # never two at once, never the next one
        rec.release.set()
        wait_until(lambda: state_of(q, behind) == JobState.DONE, message="queue moves on")
    assert rec.overlaps == []
    again = q.get_job(stuck.id)
    assert again is not None and again.attempts == 2 and again.state == JobState.DONE


def test_scheduled_job_starts_on_time_not_at_the_next_poll(make_q: MakeQ) -> None:
    from datetime import datetime, timedelta, timezone

    rec = Recorder()
    q = make_q(rec, poll_interval=3600)
    with q:
        at = datetime.now(timezone.utc) + timedelta(seconds=0.5)
        job = q.create_job("a", "ok", scheduled_at=at)
        wait_until(lambda: state_of(q, job) == JobState.DONE, timeout=30, message="scheduled")
    stored = q.get_job(job.id)
    assert stored is not None and stored.attempted_at is not None
    assert stored.attempted_at >= at


def test_retry_starts_on_time_not_at_the_next_poll(make_q: MakeQ) -> None:
    rec = Recorder(backoff=0.4)
    q = make_q(rec, poll_interval=3600)
    job = q.create_job("a", "fail_until", {"succeed_at": 2})
    with q:
        wait_until(lambda: state_of(q, job) == JobState.DONE, timeout=30, message="retry")


def test_stop_waits_for_the_running_job_and_saves_its_result(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec)
    job = q.create_job("a", "sleep", {"seconds": 0.3})
    q.start()
    wait_until(lambda: rec.count() == 1, message="job started")
    q.stop()
    assert state_of(q, job) == JobState.DONE


def test_scopes_run_only_their_own_jobs(make_q: MakeQ) -> None:
    one, two = Recorder(), Recorder()
    q1 = make_q(one, scope="one")
    q2 = make_q(two, scope="two")
    q1.create_jobs([("a", "ok", {"n": i}) for i in range(5)])
    q2.create_jobs([("a", "ok", {"n": i}) for i in range(3)])
    with q1:
        wait_until(lambda: one.count() == 5, message="scope one")
    assert two.count() == 0
    assert len(q2.list_jobs(state="available")) == 3
    assert all(j.scope == "one" for j in q1.list_jobs())


def test_drain_runs_due_jobs_in_the_calling_thread(make_q: MakeQ) -> None:
    from datetime import datetime, timedelta, timezone

    rec = Recorder()
    q = make_q(rec)
    q.create_jobs([("a", "ok", {"n": i}) for i in range(3)] + [("b", "ok", {"n": 9})])
    later = q.create_job("c", "ok", scheduled_at=datetime.now(timezone.utc) + timedelta(hours=1))
    assert q.drain() == 4
    assert rec.order("a") == [0, 1, 2]
    assert state_of(q, later) == JobState.SCHEDULED
    assert q.drain() == 0


def test_drain_serves_queues_fairly(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec)
    q.create_jobs([("a", "ok", {"n": i}) for i in range(4)])
    q.create_jobs([("b", "ok", {"n": i}) for i in range(4)])
    q.drain()
    queues = [queue for queue, _ in rec.ran]
    assert queues == ["a", "b"] * 4


def test_no_queue_starves_with_one_worker(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec, max_workers=1)
    q.create_jobs([("busy", "sleep", {"n": i, "seconds": 0.01}) for i in range(40)])
    with q:
        wait_until(lambda: rec.count("busy") >= 2, message="busy queue started")
        q.create_job("late", "ok", {"n": "late"})
        wait_until(lambda: rec.count("late") == 1, message="late queue")
        busy_after = [n for n in rec.order("busy")]
    assert len(busy_after) < 40  # the late queue ran before the busy one finished


def test_cleaner_deletes_old_done_jobs(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec, cleanup_interval=0.05, job_retention=0)
    q.create_job("a", "ok")
    newest = q.create_job("b", "ok")
    with q:
        wait_until(lambda: q.list_jobs() == [], message="both pruned")
    # The newest job of the table went too; its id is still never reused.
    assert q.create_job("c", "ok").id == newest.id + 1


def test_lease_is_renewed_while_a_long_job_runs(make_q: MakeQ) -> None:
    rec, thief = Recorder(), Recorder()
    q = make_q(rec, lease=0.3)
    other = make_q(thief, lease=0.3)  # a second scheduler on the same queue
    job = q.create_job("a", "sleep", {"seconds": 1.2})
    q.start()
    wait_until(lambda: rec.count() == 1, message="job started")
    other.start()
    wait_until(lambda: state_of(q, job) == JobState.DONE, message="long job")
    stored = q.get_job(job.id)
    assert stored is not None and stored.attempts == 1
    assert thief.count() == 0


def test_context_manager_and_notify(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec)
    with q:
        q.notify()
        job = q.create_job("a", "ok")
        wait_until(lambda: state_of(q, job) == JobState.DONE, message="done")
    assert rec.count() == 1


def test_scheduler_sleeps_while_every_worker_is_busy(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec, max_workers=1)
    q.create_job("slow", "wait")
    q.create_job("waiting", "ok")  # due, but no worker is free for it
    with q:
        assert rec.started.wait(20)
        scheduler = q._scheduler
        assert scheduler is not None
        before = scheduler.iterations
        heartbeat = threading.Event()
        heartbeat.wait(0.5)  # let the scheduler run (or spin) for a while
        turns = scheduler.iterations - before
        rec.release.set()
        wait_until(lambda: rec.count("waiting") == 1, message="waiting queue")
    assert turns < 20, f"the scheduler turned {turns} times in 0.5 s with nothing to do"


def test_error_with_a_broken_str_is_still_recorded(make_q: MakeQ) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    def perform(job: Job) -> None:
        raise Unprintable()

    q = make_q(perform)
    job = q.create_job("a", "x")
    with q:
        wait_until(lambda: state_of(q, job) == JobState.RETRYING, message="failure saved")
    stored = q.get_job(job.id)
    assert stored is not None and stored.error is not None
    assert stored.error.startswith("Unprintable: <unprintable message>")


def test_restart_after_stop_runs_with_every_worker(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec, max_workers=2)
    q.start()
    q.stop()
    q.create_jobs([("a", "wait", {"n": 1}), ("b", "wait", {"n": 2})])
    with q:
        # Both run at once only if both workers came back after the restart.
        wait_until(lambda: rec.running["a"] + rec.running["b"] == 2, message="both running")
        rec.release.set()
    assert rec.count() == 2
