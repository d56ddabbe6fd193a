"""A model test: random operations against SQLiteBackend and a small model of SPEC 4.

After every step, the backend and the model agree on every job's state and
attempts, and on whether anything is runnable; a claim of every free slot takes
exactly the heads the model says are runnable.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from queuetopia_lite import JobState
from queuetopia_lite.backend import Claim, Failure, NewJob, Outcome, Release, Success
from queuetopia_lite.sqlite import SQLiteBackend

SCOPE = "m"
LEASE = 10.0
BACKOFF = 3.0
QUEUES = ["a", "b", "c"]


@dataclasses.dataclass
class MJob:
    id: int
    queue: str
    scheduled_at: float
    max_attempts: int
    status: str = "pending"  # pending running done failed cancelled
    attempts: int = 0
    next_attempt_at: float | None = None
    token: str | None = None


@dataclasses.dataclass
class MQueue:
    token: str | None = None
    until: float = 0.0
    hold_until: float = 0.0


class Model(RuleBasedStateMachine):
    """SPEC 4 in a few dictionaries, run side by side with the real backend."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.backend = SQLiteBackend(os.path.join(self.dir.name, "m.db"), durability="normal")
        self.now = 1_800_000_000.0
        self.jobs: dict[int, MJob] = {}
        self.queues: dict[str, MQueue] = {q: MQueue() for q in QUEUES}
        self.claims: list[Claim] = []  # claims whose worker has not reported yet
        self.runaways: list[Claim] = []  # timed out: their thread still runs

    def teardown(self) -> None:
        self.backend.close()
        self.dir.cleanup()

    # -- the model's rules --------------------------------------------------------

    def head(self, queue: str) -> MJob | None:
        pending = [j for j in self.jobs.values() if j.queue == queue and j.status == "pending"]
        return min(pending, key=lambda j: (j.scheduled_at, j.id), default=None)

    def runnable_heads(self) -> set[int]:
        out = set()
        for name, q in self.queues.items():
            head = self.head(name)
            if q.token is not None or head is None:
                continue
            due = max(head.scheduled_at, head.next_attempt_at or 0.0, q.hold_until)
            if due <= self.now:
                out.add(head.id)
        return out

    def fail_job(self, job: MJob) -> None:
        job.status = "failed" if job.attempts >= job.max_attempts else "pending"
        job.next_attempt_at = self.now + BACKOFF
        job.token = None
        if job.status == "failed":  # an exhausted job holds its queue for its last backoff
            q = self.queues[job.queue]
            q.hold_until = max(q.hold_until, job.next_attempt_at)

    def recover(self) -> None:
        for q in self.queues.values():
            if q.token is not None and q.until <= self.now:
                for job in self.jobs.values():
                    if job.token == q.token and job.status == "running":
                        self.fail_job(job)
                q.token = None

    def apply(self, outcome: Outcome) -> bool:
        """Apply an outcome to the model; whether it is saved (not fenced off)."""
        claim = outcome.claim
        job = self.jobs[claim.job.id]
        q = self.queues[job.queue]
        valid = job.status == "running" and job.token == claim.token
        if isinstance(outcome, Success) and valid:
            job.status, job.token, job.next_attempt_at = "done", None, None
        elif isinstance(outcome, Failure) and valid:
            self.fail_job(job)
            if outcome.keep_lock:
                return True
        elif isinstance(outcome, Failure) and outcome.keep_lock:
            return False
        if q.token == claim.token:
            q.token = None
            return valid or isinstance(outcome, Release)
        return False

    def state(self, job: MJob) -> JobState:
        if job.status != "pending":
            return JobState(job.status)
        if job.next_attempt_at is not None and job.next_attempt_at > self.now:
            return JobState.RETRYING
        if job.scheduled_at > self.now:
            return JobState.SCHEDULED
        return JobState.AVAILABLE

    # -- rules ----------------------------------------------------------------------

    @rule(queue=st.sampled_from(QUEUES), max_attempts=st.integers(1, 3),
          delay=st.sampled_from([0.0, 0.0, 5.0]))
    def create(self, queue: str, max_attempts: int, delay: float) -> None:
        new = NewJob(queue=queue, action="x", params="{}", scheduled_at=self.now + delay,
                     timeout=None, max_backoff=100.0, max_attempts=max_attempts)
        (job,) = self.backend.insert_jobs(SCOPE, [new], self.now)
        self.jobs[job.id] = MJob(job.id, queue, self.now + delay, max_attempts)

    @rule(limit=st.sampled_from([1, 10]))
    def claim(self, limit: int) -> None:
        result = self.backend.step(SCOPE, self.now, claim=limit, owner="w", lease=LEASE,
                                   backoff=lambda job: BACKOFF)
        self.recover()
        runnable = self.runnable_heads()
        got = {c.job.id for c in result.claimed}
        if limit >= len(QUEUES):
            assert got == runnable, f"claimed {got}, model says runnable {runnable}"
        else:
            assert got <= runnable and len(got) == min(limit, len(runnable))
        for c in result.claimed:
            job = self.jobs[c.job.id]
            job.status, job.token = "running", c.token
            job.attempts += 1
            assert c.job.attempts == job.attempts
            q = self.queues[job.queue]
            q.token, q.until = c.token, self.now + LEASE
            self.claims.append(c)

    @precondition(lambda self: self.claims)
    @rule(data=st.data(), kind=st.sampled_from(["success", "failure", "timeout"]))
    def outcome(self, data: st.DataObject, kind: str) -> None:
        """A worker reports (its claim may have been lost meanwhile: fencing)."""
        claim = data.draw(st.sampled_from(self.claims))
        self.claims.remove(claim)
        outcome: Outcome
        if kind == "success":
            outcome = Success(claim)
        else:
            outcome = Failure(claim, "boom", self.now + BACKOFF, keep_lock=kind == "timeout")
            if kind == "timeout":
                self.runaways.append(claim)
        self.save(outcome, kind)

    @precondition(lambda self: self.runaways)
    @rule(data=st.data())
    def runaway_ends(self, data: st.DataObject) -> None:
        claim = data.draw(st.sampled_from(self.runaways))
        self.runaways.remove(claim)
        self.save(Release(claim), "release")

    def save(self, outcome: Outcome, kind: str) -> None:
        result = self.backend.step(SCOPE, self.now, outcomes=[outcome],
                                   backoff=lambda job: BACKOFF)
        # The step recovers expired leases after saving outcomes.
        saved = self.apply(outcome)
        self.recover()
        assert (outcome not in result.rejected) == saved, f"{kind} saved={saved}"

    @precondition(lambda self: self.claims or self.runaways)
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        claim = data.draw(st.sampled_from(self.claims + self.runaways))
        lost = self.backend.renew(SCOPE, [claim], self.now + LEASE)
        q = self.queues[claim.job.queue]
        assert (lost == []) == (q.token == claim.token)
        if q.token == claim.token:
            q.until = self.now + LEASE

    @rule(seconds=st.sampled_from([0.5, 3.0, 6.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = self.jobs[data.draw(st.sampled_from(sorted(self.jobs)))]
        try:
            self.backend.cancel_job(SCOPE, job.id, self.now)
            ok = True
        except Exception:
            ok = False
        assert ok == (job.status in ("pending", "running"))
        if ok:
            job.status, job.token, job.next_attempt_at = "cancelled", None, None

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job = self.jobs[data.draw(st.sampled_from(sorted(self.jobs)))]
        try:
            self.backend.retry_job(SCOPE, job.id, self.now)
            ok = True
        except Exception:
            ok = False
        assert ok == (job.status not in ("running", "done"))
        if ok:
            job.status, job.next_attempt_at = "pending", None
            job.max_attempts = max(job.max_attempts, job.attempts + 1)
            self.queues[job.queue].hold_until = 0.0

    # -- agreement ------------------------------------------------------------------

    @invariant()
    def states_agree(self) -> None:
        stored = {j.id: j for j in self.backend.list_jobs(SCOPE, self.now, limit=10_000)}
        assert set(stored) == set(self.jobs)
        for job_id, job in self.jobs.items():
            real = stored[job_id]
            assert (real.state, real.attempts) == (self.state(job), job.attempts), job

    @invariant()
    def runnable_agrees(self) -> None:
        expired = any(q.token is not None and q.until <= self.now for q in self.queues.values())
        model = bool(self.runnable_heads()) or expired
        assert self.backend.has_runnable(SCOPE, self.now) == model


# Modest by default so CI stays fast; MODEL_EXAMPLES=1000 for a deeper search.
Model.TestCase.settings = settings(max_examples=int(os.environ.get("MODEL_EXAMPLES", "60")),
                                   stateful_step_count=40, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])
test_model = Model.TestCase
