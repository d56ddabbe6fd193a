"""A model-based check that qt_queues never drifts out of step with qt_jobs (SPEC 4.1, 4.2).

A hypothesis state machine drives the SQLite backend directly with a fake clock through
every operation (create, claim, success, failure, timeout with keep_lock, release of the
runaway, cancel, retry, lease expiry, prune) and after each step recomputes every queue's
expected head from qt_jobs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import apsw
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from queuetopia_lite.backend import Claim, Failure, NewJob, Release, Success
from queuetopia_lite.errors import JobNotFoundError, JobStateError
from queuetopia_lite.sqlite import SQLiteBackend

SCOPE = "s"
QUEUES = ["a", "b", "c"]
LEASE = 30.0


class QueueRowModel(RuleBasedStateMachine):
    MIN_ATTEMPTS = 0

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "j.db")
        self.backend = SQLiteBackend(self.path, durability="normal")
        self.raw = apsw.Connection(self.path)
        self.now = 1_800_000_000.0
        self.live: dict[str, Claim] = {}  # claims whose worker has not reported
        self.runaways: dict[str, Claim] = {}  # timed out, thread still running
        self.ids: list[int] = []

    def teardown(self) -> None:
        self.raw.close()
        self.backend.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return list(self.raw.execute(sql, args))

    def true_head(self, queue: str) -> tuple[Any, ...] | None:
        got = self.rows("SELECT id, scheduled_at, next_attempt_at FROM qt_jobs WHERE scope=? "
                        "AND queue=? AND status='pending' ORDER BY scheduled_at, id LIMIT 1",
                        SCOPE, queue)
        return got[0] if got else None

    # -- rules -------------------------------------------------------------------

    @rule(queue=st.sampled_from(QUEUES), offset=st.none() | st.integers(-20, 20),
          max_attempts=st.integers(0, 3))
    def create(self, queue: str, offset: int | None, max_attempts: int) -> None:
        max_attempts = max(max_attempts, self.MIN_ATTEMPTS)
        new = NewJob(queue=queue, action="x", params=json.dumps({}),
                     scheduled_at=None if offset is None else self.now + offset, timeout=60.0,
                     max_backoff=100.0, max_attempts=max_attempts)
        (job,) = self.backend.insert_jobs(SCOPE, [new], self.now)
        self.ids.append(job.id)

    @rule(n=st.integers(1, 3))
    def claim(self, n: int) -> None:
        self._forget_lost(self.backend.step(SCOPE, self.now))  # expired leases first
        expected = {}
        for (queue, hold) in self.rows("SELECT queue, hold_until FROM qt_queues WHERE scope=? "
                                       "AND lock_token IS NULL", SCOPE):
            head = self.true_head(queue)
            if head is not None:
                expected[queue] = (head, hold)
        result = self.backend.step(SCOPE, self.now, claim=n, owner="w", lease=LEASE)
        for c in result.claimed:
            assert c.job.queue in expected, f"claimed in a locked queue {c.job.queue}"
            (head_id, sched, nxt), hold = expected[c.job.queue]
            assert c.job.id == head_id, f"claimed job {c.job.id}, true head is {head_id}"
            assert max(sched, nxt or 0.0) <= self.now, "claimed a head that is not due"
            assert (hold or 0.0) <= self.now, "claimed a queue still held by an exhausted job"
            self.live[c.token] = c
        self._forget_lost(result)

    def _forget_lost(self, result: Any) -> None:
        locked = {t for (t,) in self.rows("SELECT lock_token FROM qt_queues WHERE scope=? AND "
                                          "lock_token IS NOT NULL", SCOPE)}
        for d in (self.live, self.runaways):
            for token in list(d):
                if token not in locked:
                    del d[token]

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data(), kind=st.sampled_from(["ok", "fail", "timeout"]),
          delay=st.sampled_from([0.0, 1.0, 5.0, 50.0]))
    def report(self, data: st.DataObject, kind: str, delay: float) -> None:
        token = list(self.live)[data.draw(st.integers(0, len(self.live) - 1))]
        c = self.live.pop(token)
        if kind == "ok":
            outcome: Any = Success(c)
        elif kind == "fail":
            outcome = Failure(c, "boom", self.now + delay)
        else:
            outcome = Failure(c, "timeout", self.now + delay, keep_lock=True)
            self.runaways[token] = c
        result = self.backend.step(SCOPE, self.now, outcomes=[outcome])
        self._forget_lost(result)

    @precondition(lambda self: bool(self.runaways))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        token = list(self.runaways)[data.draw(st.integers(0, len(self.runaways) - 1))]
        c = self.runaways.pop(token)
        result = self.backend.step(SCOPE, self.now, outcomes=[Release(c)])
        self._forget_lost(result)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), op=st.sampled_from(["cancel", "retry"]))
    def operator(self, data: st.DataObject, op: str) -> None:
        job_id = data.draw(st.sampled_from(self.ids))
        try:
            if op == "cancel":
                self.backend.cancel_job(SCOPE, job_id, self.now)
            else:
                self.backend.retry_job(SCOPE, job_id, self.now)
        except (JobStateError, JobNotFoundError):
            pass

    @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 10.0, 60.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        if dt > LEASE:  # every worker was lost; heartbeats stopped
            result = self.backend.step(SCOPE, self.now)
            self._forget_lost(result)

    @rule(renew=st.booleans())
    def heartbeat(self, renew: bool) -> None:
        claims = list(self.live.values()) + list(self.runaways.values())
        if renew and claims:
            self.backend.renew(SCOPE, claims, self.now + LEASE)

    @rule()
    def prune(self) -> None:
        self.backend.prune(SCOPE, self.now + 1)

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def queue_rows_match_jobs(self) -> None:
        rows = self.rows("SELECT queue, head_id, head_scheduled_at, head_due_at, ready_at, "
                         "hold_until, lock_token FROM qt_queues WHERE scope=?", SCOPE)
        by_queue = {r[0]: r for r in rows}
        for (queue,) in self.rows("SELECT DISTINCT queue FROM qt_jobs WHERE scope=? AND "
                                  "status='pending'", SCOPE):
            assert queue in by_queue, f"queue {queue} has pending jobs but no qt_queues row"
        for queue, head_id, _head_sched, head_due, ready_at, hold, token in rows:
            if token is not None:
                assert ready_at is None, f"locked queue {queue} is offered as ready"
                continue
            head = self.true_head(queue)
            if head is None:
                assert head_id is None, f"queue {queue}: head {head_id} but no pending job"
                assert ready_at is None
                continue
            true_id, sched, nxt = head
            assert head_id == true_id, f"queue {queue}: head_id {head_id}, true head {true_id}"
            due = max(sched, nxt or 0.0)
            assert head_due == due, f"queue {queue}: head_due_at {head_due}, true {due}"
            assert ready_at is not None, f"queue {queue} has a head but is never ready"
            assert ready_at >= due and ready_at >= (hold or 0.0)
            assert ready_at <= max(due, hold or 0.0, self.now), \
                f"queue {queue}: ready_at {ready_at} later than needed"

    @invariant()
    def running_jobs_are_locked(self) -> None:
        for job_id, queue, token in self.rows("SELECT id, queue, lock_token FROM qt_jobs WHERE "
                                              "scope=? AND status='running'", SCOPE):
            got = self.rows("SELECT lock_token, head_id FROM qt_queues WHERE scope=? AND "
                            "queue=?", SCOPE, queue)
            assert got and got[0][0] == token, f"running job {job_id} whose queue is not its"


class QueueRowModelNoZeroAttempts(QueueRowModel):
    """The same without max_attempts=0 jobs (whose retry bug the first model finds at once)."""

    MIN_ATTEMPTS = 1


_SETTINGS = settings(max_examples=300, stateful_step_count=40, deadline=None,
                     suppress_health_check=list(HealthCheck))
TestQueueRowModel = QueueRowModel.TestCase
TestQueueRowModel.settings = _SETTINGS
TestQueueRowModelNoZeroAttempts = QueueRowModelNoZeroAttempts.TestCase
TestQueueRowModelNoZeroAttempts.settings = _SETTINGS
