"""A model test of the committer: every order in which concurrent events reach the database.

The real ``Committer`` and the real runner's board protocol (``Runner.begin``/``end``)
run on a real SQLite file, without threads. Each rule is one thing that happens
concurrently in live schedulers: a worker starts a job or ends it (success, failure,
GiveUp, Snooze, an error text the database refuses), a job's timeout passes, a
committer takes one turn with some of the events that reached it (the rest arrive
during its commit), a runaway's thread ends, an operator cancels or retries, time
passes (an unrenewed lease lapses), the wall clock alone jumps (no lease lapses: on
SQLite leases of one host follow its host clock), a lease keeper renews, a second
process's committer recovers and claims, a stop is asked or taken back, a process
dies or starts again, the database fails a step. Hypothesis draws the order.

SPEC 4 judges after every rule, and at every claim:

- at most one job of a queue is running, and a queue's lock is held by a live claim
  (a task on some process's board) until its lease lapses;
- a claim takes its queue's head, the first unfinished job by (scheduled_at, id):
  nothing earlier in its queue is unfinished when it starts;
- a job starts while another job of its queue is still performing (or holds its
  claim) only after that claim's lease lapsed (at least once);
- attempts are counted at claim (a saved Snooze gives one back);
- a job whose success (or GiveUp) was saved never runs again, unless an operator
  retried it;
- no unfinished job is left with no head and no lock (the "head=None" wedge);
- a process that stopped and settled holds only runaways.

At the end of each example everything is let run to completion: every job must end
(done, failed or cancelled), or the model reports a wedge; every done job had a success.

The same machine runs on Postgres (a fresh schema per example; leases follow the fake
clock there too). MODEL_EXAMPLES (default 150) and MODEL_EXAMPLES_POSTGRES (default 25)
set the number of examples for a deeper search.

The tests after the machine replay the old timeout race (issue 9, defect 1) with the
committer's order disabled: the model must catch it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
import uuid
from typing import Any, Callable, Collection, Sequence, cast

import apsw
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from queuetopia_lite import GiveUp, Job, JobState, Snooze
from queuetopia_lite.backend import (
    Backend,
    BackoffFunction,
    Claim,
    Failure,
    HostInstant,
    NewJob,
    Outcome,
    Release,
    Snoozed,
    StepResult,
    Success,
)
from queuetopia_lite.errors import DatabaseError, JobStateError
from queuetopia_lite.events import Events
from queuetopia_lite.performer import BoundPerformer
from queuetopia_lite.running import perform
from queuetopia_lite.scheduler.board import Board, Task, TaskState
from queuetopia_lite.scheduler.committer import Committer
from queuetopia_lite.scheduler.helpers import Dispatcher, LeaseKeeper
from queuetopia_lite.scheduler.runner import Runner
from queuetopia_lite.sqlite import SQLiteBackend

from .. import pgserver

SCOPE = "cm"
LEASE = 30.0
HOST_KEY = "model-boot.1"  # both processes on one host
QUEUES = ["a", "b", "c"]
WORKERS = 2  # worker threads (and claims) per process
POISON = "POISON"  # an error text the (wrapped) database refuses to store
LOCKS = ("SELECT queue, lock_token, locked_until FROM {table} WHERE scope = ? AND lock_token "
         "IS NOT NULL")
UNFINISHED = (JobState.AVAILABLE, JobState.SCHEDULED, JobState.RETRYING, JobState.RUNNING)
PLANS = ["success", "failure", "giveup", "snooze0", "snooze3", "poison", "giveup-poison",
         "giveup-surrogate", "success-unsavable"]


class Actor:
    """The performer: does what the state machine planned for this run of the job."""

    def __init__(self) -> None:
        self.plan = "success"

    def perform(self, job: Job) -> None:
        plan = self.plan  # "success" and "success-unsavable" return
        if plan == "failure":
            raise RuntimeError("boom")
        if plan == "poison":
            raise RuntimeError(POISON)
        if plan == "giveup":
            raise GiveUp("no")
        if plan == "giveup-poison":
            raise GiveUp(POISON)
        if plan == "giveup-surrogate":  # a file name from os.fsdecode(b"report-\xff.csv")
            raise GiveUp(os.fsdecode(b"report-\xff.csv"))
        if plan.startswith("snooze"):
            raise Snooze(float(plan[len("snooze"):]))

    def backoff(self, job: Job) -> float:
        # Even ids retry at once: the retry is claimed in the step that saves the failure.
        return 0.0 if job.id % 2 == 0 else 2.0


class FakeRunner(Runner):
    """The runner without threads: the machine starts and ends handed jobs itself."""

    def __init__(self, board: Board, performer: BoundPerformer,
                 clock: Callable[[], float]) -> None:
        super().__init__(board, performer, clock, WORKERS)
        self.handed: list[Task] = []  # claimed, not yet taken by a worker
        self.free_threads = WORKERS

    def start(self) -> None:
        pass

    def hand(self, tasks: list[Task]) -> None:
        self.handed.extend(tasks)

    def abandon(self, task: Task) -> None:
        self.free_threads += 1

    def stop(self) -> None:
        pass


class Faulty:
    """The backend as the committer sees it: it records every step, and fails on demand."""

    def __init__(self, inner: Backend, machine: CommitterModel) -> None:
        self.inner = inner
        self.machine = machine
        self.fail_steps = 0  # the next steps raise a retryable DatabaseError

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, scope: str, now: float, *, outcomes: Sequence[Outcome] = (),
             claim: int = 0, owner: str = "", lease: float = 30.0,
             backoff: BackoffFunction | None = None, alive: Collection[str] = (),
             host: HostInstant | None = None) -> StepResult:
        if self.fail_steps > 0:
            self.fail_steps -= 1
            raise DatabaseError("model.db", "injected: disk I/O error", retryable=True)
        for outcome in outcomes:  # as a database refusing one text: nothing is saved
            if isinstance(outcome, Failure) and POISON in outcome.error:
                raise ValueError("injected: this error text cannot be stored")
            if outcome.claim.token in self.machine.unsavable and not isinstance(outcome, Release):
                raise ValueError("injected: this outcome cannot be stored")
        result = self.inner.step(scope, now, outcomes=outcomes, claim=claim, owner=owner,
                                 lease=lease, backoff=backoff, alive=alive, host=host)
        self.machine.judge_step(list(outcomes), result, now if host is None else host.at, lease)
        return result

    def renew(self, scope: str, claims: Sequence[Claim], until: float,
              host_until: HostInstant | None = None) -> list[Claim]:
        lost = self.inner.renew(scope, claims, until, host_until)
        for claim in claims:
            if claim not in lost:
                self.machine.lease_until[claim.token] = (
                    until if host_until is None else host_until.at)
        return lost


@dataclasses.dataclass
class Proc:
    """One process's scheduler: its board, runner and committer on its own connection."""

    backend: Faulty
    board: Board
    runner: FakeRunner
    committer: Committer
    status: str = "live"  # live, exited (stopped and settled), dead (killed)


class CommitterModel(RuleBasedStateMachine):
    """Two processes' committers on one SQLite file, driven event by event.

    Both processes are on one host: their leases follow the host clock (``host_at``),
    which the wall clock's jumps leave alone.
    """

    HOST_LEASES = True  # the backend judges leases of this host by the host clock

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_800_000_000.0
        self.host_at = 5_000.0  # CLOCK_BOOTTIME: moves with time, not with wall jumps
        self.actor = Actor()
        self.performer = BoundPerformer(self.actor)
        self.inners = self.open_database()  # two connections: two processes
        self.procs = [self.new_proc(slot) for slot in range(2)]
        self.gone: list[Board] = []  # boards of dead processes (their claims lapse)
        self.jobs: dict[int, tuple[str, float]] = {}  # id: (queue, scheduled_at)
        self.lease_until: dict[str, float] = {}  # by token
        self.attempts: dict[int, int] = {}  # claims less saved snoozes, by job id
        self.finished: set[int] = set()  # jobs whose success or GiveUp was saved
        self.posted: dict[str, Outcome] = {}  # what each claim's worker reported, by token
        self.unsavable: set[str] = set()  # claims whose outcome no step can save (dropped)
        # What judge_step found: raised after the turn (the committer would catch it).
        self.violations: list[AssertionError] = []
        # Disruptions per example: beyond these, examples would mostly watch dead processes.
        self.budget = {"faults": 2, "stops": 2, "deaths": 1, "stalls": 2, "operator": 4,
                       "creates": 12, "jumps": 2}

    def new_proc(self, slot: int) -> Proc:
        board = Board()
        backend = Faulty(self.inners[slot], self)
        runner = FakeRunner(board, self.performer, self.clock)
        events = Events()
        committer = Committer(cast(Backend, backend), board, runner, self.performer,
                              Dispatcher(self.performer, events), events, scope=SCOPE,
                              capacity=WORKERS,
                              lease=LEASE, poll_interval=1.0, clock=self.clock,
                              host_clock=self.host_clock)
        return Proc(backend, board, runner, committer)

    def clock(self) -> float:
        return self.now

    def host_clock(self) -> HostInstant | None:
        return HostInstant(HOST_KEY, self.host_at) if self.HOST_LEASES else None

    def lease_now(self) -> float:
        """The clock leases are judged by."""
        return self.host_at if self.HOST_LEASES else self.now

    def elapse(self, seconds: float) -> None:
        """Time passes: both clocks move."""
        self.now += seconds
        self.host_at += seconds

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None:  # only after an example that passed
                self.run_to_completion()
        finally:
            self.close()

    def open_database(self) -> list[Backend]:
        """A fresh database, one backend per process."""
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "model.db")
        self.raw = apsw.Connection(path)  # the driver the backends use
        return [SQLiteBackend(path, durability="normal") for _ in range(2)]

    def close(self) -> None:
        for inner in self.inners:
            inner.close()
        self.raw.close()
        self.dir.cleanup()

    # -- reading the database -------------------------------------------------------

    def stored(self) -> dict[int, Job]:
        return {j.id: j for j in self.inners[0].list_jobs(SCOPE, self.now, limit=10_000)}

    def locks(self) -> dict[str, tuple[str, float]]:
        """Locked queues: queue -> (token, locked_until)."""
        rows = self.raw.execute(LOCKS.format(table="qt_queues"), (SCOPE,)).fetchall()
        return {queue: (token, until) for queue, token, until in rows}

    def boards(self) -> list[Board]:
        return [p.board for p in self.procs] + self.gone

    def tasks(self) -> list[Task]:
        return [task for board in self.boards() for task in board.tasks.values()]

    # -- judging every step at its commit ---------------------------------------------

    def judge_step(self, outcomes: list[Outcome], result: StepResult, now: float,
                   lease: float) -> None:
        """Check a committed step before its committer acts on it (SPEC 4.1, 4.2, 4.6).

        ``now``: the step's instant on the clock leases are judged by.
        """
        try:
            self._judge_step(outcomes, result, now, lease)
        except AssertionError as exc:
            self.violations.append(exc)

    def _judge_step(self, outcomes: list[Outcome], result: StepResult, now: float,
                    lease: float) -> None:
        released = set()  # tokens whose queue this step may have released
        for outcome in outcomes:
            saved = outcome not in result.rejected
            job_id = outcome.claim.job.id
            if not (isinstance(outcome, Failure) and outcome.keep_lock):
                released.add(outcome.claim.token)
            if not saved:
                continue
            posted = self.posted.get(outcome.claim.token)
            if posted is not None and not isinstance(outcome, Release):
                assert type(outcome) is type(posted) and getattr(outcome, "give_up", False) \
                    == getattr(posted, "give_up", False), \
                    f"job {job_id}: the worker reported {posted}, the committer saved {outcome}"
            if isinstance(outcome, Success) or (isinstance(outcome, Failure)
                                                and outcome.give_up):
                self.finished.add(job_id)
            elif isinstance(outcome, Snoozed):
                self.attempts[job_id] -= 1
        if not result.claimed:
            return
        stored = self.stored()
        for claim in result.claimed:
            job = claim.job
            self.attempts[job.id] = self.attempts.get(job.id, 0) + 1
            assert job.attempts == self.attempts[job.id], \
                f"job {job.id} claimed with attempts {job.attempts}, " \
                f"expected {self.attempts[job.id]} (counted at claim)"
            assert job.id not in self.finished, \
                f"job {job.id} runs again after its success or GiveUp was saved"
            assert stored[job.id].state is JobState.RUNNING
            key = self.jobs[job.id][1], job.id
            earlier = [j.id for j in stored.values()
                       if j.queue == job.queue and (self.jobs[j.id][1], j.id) < key
                       and j.state in UNFINISHED]
            assert not earlier, \
                f"job {job.id} claimed while earlier jobs {earlier} of queue " \
                f"{job.queue!r} are unfinished (not the head)"
            for task in self.tasks():
                other = task.claim
                if other.job.queue != job.queue or other.token in released:
                    continue
                assert self.lease_until[other.token] <= now, \
                    f"job {job.id} claimed while job {other.job.id} of queue " \
                    f"{job.queue!r} still holds a live claim ({task.state.value})"
            self.lease_until[claim.token] = now + lease

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def one_running_per_queue_and_attempts(self) -> None:
        stored = self.stored()
        running: dict[str, list[int]] = {}
        for job in stored.values():
            assert job.attempts == self.attempts.get(job.id, 0), \
                f"job {job.id}: {job.attempts} attempts stored, {self.attempts.get(job.id, 0)} " \
                "claims (less snoozes)"
            if job.state is JobState.RUNNING:
                running.setdefault(job.queue, []).append(job.id)
        for queue, ids in running.items():
            assert len(ids) == 1, f"queue {queue!r} runs {ids} at once"

    @invariant()
    def no_wedge(self) -> None:
        """An unfinished job's queue is locked, or offers its true head."""
        stored = self.stored()
        locks = self.locks()
        statuses = {s.queue: s for s in self.inners[0].queue_statuses(SCOPE, self.now)}
        for queue in QUEUES:
            unfinished = sorted((self.jobs[j.id][1], j.id, j.state) for j in stored.values()
                                if j.queue == queue and j.state in UNFINISHED)
            if not unfinished:
                continue
            if queue in locks:
                continue
            assert not any(state is JobState.RUNNING for *_, state in unfinished), \
                f"queue {queue!r} runs a job but is not locked"
            status = statuses.get(queue)
            head = None if status is None or status.head is None else status.head.id
            assert head == unfinished[0][1], \
                f"queue {queue!r}: head {head}, first unfinished job {unfinished[0][1]} " \
                "(the queue is not locked: a wedge)"
            assert status is not None and status.next_run_at is not None, \
                f"queue {queue!r} has head {head} but never runs it"

    @invariant()
    def locks_belong_to_live_claims(self) -> None:
        """A live lease is always a task on some board: no claim is forgotten while held."""
        mine = {task.claim.token for task in self.tasks()}
        for queue, (token, until) in self.locks().items():
            # A dropped outcome's claim is left to lapse (then the job runs again).
            until = self.lease_until.get(token, until)  # on the clock leases follow
            if until > self.lease_now() and token not in self.unsavable:
                assert token in mine, \
                    f"queue {queue!r} is locked by a claim no process holds (until it lapses)"

    # -- rules: the application and the operator ----------------------------------------

    @initialize(jobs=st.lists(st.tuples(st.sampled_from(QUEUES), st.integers(1, 3),
                                        st.sampled_from([None, 1000.0, 1000.0])),
                              min_size=2, max_size=6))
    def some_jobs(self, jobs: list[tuple[str, int, float | None]]) -> None:
        for queue, max_attempts, timeout in jobs:
            self.create(queue, max_attempts, 0.0, timeout)

    @precondition(lambda self: self.budget["creates"] > 0)
    @rule(queue=st.sampled_from(QUEUES), max_attempts=st.integers(1, 3),
          delay=st.sampled_from([0.0, 0.0, 0.0, 5.0, -5.0]),
          timeout=st.sampled_from([None, 1000.0, 1000.0]))
    def create(self, queue: str, max_attempts: int, delay: float,
               timeout: float | None) -> None:
        self.budget["creates"] -= 1
        new = NewJob(queue=queue, action="x", params="{}", scheduled_at=self.now + delay,
                     timeout=timeout, max_backoff=100.0, max_attempts=max_attempts)
        (job,) = self.inners[1].insert_jobs(SCOPE, [new], self.now)
        self.jobs[job.id] = (queue, self.now + delay)

    @precondition(lambda self: self.jobs and self.budget["operator"] > 0)
    @rule(data=st.data(), op=st.sampled_from(["cancel", "retry", "retry"]))
    def operator(self, data: st.DataObject, op: str) -> None:
        """An operator cancels or retries a job, whatever its state."""
        self.budget["operator"] -= 1
        job_id = data.draw(st.sampled_from(sorted(self.jobs)), label="job")
        try:
            if op == "cancel":
                self.inners[1].cancel_job(SCOPE, job_id, self.now)
            else:
                self.inners[1].retry_job(SCOPE, job_id, self.now)
                self.finished.discard(job_id)
        except JobStateError:
            pass

    @precondition(lambda self: self.budget["stalls"] > 0)
    @rule()
    def stall(self) -> None:
        """Longer than a lease passes without renewal (a stalled process): leases lapse."""
        self.budget["stalls"] -= 1
        self.elapse(LEASE + 1.0)

    @precondition(lambda self: self.HOST_LEASES and self.budget["jumps"] > 0)
    @rule(seconds=st.sampled_from([LEASE + 1.0, 3600.0, -2.0]))
    def wall_clock_jumps(self, seconds: float) -> None:
        """The wall clock jumps (NTP, a VM resumed); the host clock does not: no lease
        lapses, whatever the wall clock says."""
        self.budget["jumps"] -= 1
        self.now += seconds

    # -- rules: worker threads --------------------------------------------------------

    def live(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p.status != "dead"]

    def startable(self) -> list[tuple[int, int]]:
        return [(i, t) for i in self.live() for t in range(len(self.procs[i].runner.handed))
                if self.procs[i].runner.free_threads > 0]

    def performing(self, timed: bool = False) -> list[tuple[int, str]]:
        """(slot, token) of jobs being performed (``timed``: running, with a deadline ahead)."""
        # In the boards' order, not the tokens' (random): hypothesis replays examples.
        return [(i, token) for i in self.live() for token, t in self.procs[i].board.tasks.items()
                if (t.state is TaskState.RUNNING and (not timed or (
                    t.deadline is not None and t.deadline > 0)))
                or (not timed and t.state is TaskState.TIMED_OUT and not t.ended)]

    # The scheduler's flow is one rule with a weighted choice: as separate rules, hypothesis'
    # swarm testing would often disable one of them, and the flow (claim, start, end, save)
    # would stop in most examples.
    @rule(data=st.data())
    def concurrently(self, data: st.DataObject) -> None:
        """The next thing that happens in the live schedulers (only what can happen now)."""
        events = []
        if self.startable():
            events += ["starts"] * 2
        if self.performing():
            events += ["ends"] * 2
        for slot, event in enumerate(["turn", "other turn"]):
            if self.procs[slot].status == "live":
                events += [event] * 2
        if self.performing(timed=True):
            events.append("deadline")
        events += ["renew", "time"]
        event = data.draw(st.sampled_from(events), label="event")
        if event in ("turn", "other turn"):
            proc = self.procs[0 if event == "turn" else 1]
            self.turn(proc, data.draw(st.integers(0, 4), label="events taken"))
        elif event == "starts":
            self.worker_starts(*data.draw(st.sampled_from(self.startable()), label="task"))
        elif event == "ends":
            slot, token = data.draw(st.sampled_from(self.performing()), label="task")
            self.worker_ends(slot, token, data.draw(st.sampled_from(PLANS), label="plan"))
        elif event == "deadline":
            self.deadline_passes(*data.draw(st.sampled_from(self.performing(timed=True)),
                                            label="task"))
        elif event == "renew":
            self.keeper_renews(data.draw(st.integers(0, 1), label="slot"))
        elif event == "time":  # backoffs end, snoozes wake, delayed jobs come due
            self.elapse(data.draw(st.sampled_from([0.5, 2.0, 5.0]), label="seconds"))

    def worker_starts(self, slot: int, index: int) -> None:
        """A free worker takes a handed job."""
        runner = self.procs[slot].runner
        runner.free_threads -= 1
        runner.begin(runner.handed.pop(index))

    def worker_ends(self, slot: int, token: str, plan: str) -> None:
        """A job returns or raises (a runaway's thread ends: its result is discarded)."""
        proc = self.procs[slot]
        task = proc.board.tasks[token]
        self.actor.plan = plan
        outcome = perform(self.performer, task.claim, self.clock)
        if plan == "success-unsavable":
            self.unsavable.add(token)
        if proc.runner.end(task, outcome):  # else a runaway's: discarded
            self.posted[token] = outcome
            proc.runner.free_threads += 1

    def deadline_passes(self, slot: int, token: str) -> None:
        """A running job's timeout passes (the committer notices at its next turn)."""
        board = self.procs[slot].board
        with board.lock:
            board.tasks[token].deadline = -math.inf

    def turn(self, proc: Proc, take: int) -> None:
        board = proc.board
        with board.lock:
            events, board.inbox = board.inbox[:take], board.inbox[take:]
            stopping = board.stopping
        try:
            proc.committer.turn(events, stopping)  # every turn asks whether work waits
        except DatabaseError as exc:
            assert exc.retryable and "injected" in str(exc), exc
        if self.violations:
            raise self.violations[0]
        if proc.committer._settled_to_stop():
            proc.status = "exited"
            proc.runner.stop()
            left = [t for t in board.tasks.values()
                    if not (t.state is TaskState.TIMED_OUT and t.timeout_settled)]
            assert not left, f"the committer ended with tasks {left} on its board"

    def keeper_renews(self, slot: int) -> None:
        """The lease keeper renews every claim on the board (a runaway's after a stop)."""
        proc = self.procs[slot]
        if proc.status == "dead":
            return
        keeper = LeaseKeeper(cast(Backend, proc.backend), proc.board, SCOPE, LEASE, self.clock,
                             self.host_clock)
        keeper.renew_once(proc.board.claims(runaways_only=proc.status == "exited"))

    @precondition(lambda self: self.budget["faults"] > 0)
    @rule(slot=st.integers(0, 1), steps=st.integers(1, 4))
    def database_fails(self, slot: int, steps: int) -> None:
        """The next steps of this process fail (a full disk, a busy file)."""
        self.budget["faults"] -= 1
        self.procs[slot].backend.fail_steps = steps

    @precondition(lambda self: self.budget["stops"] > 0)
    @rule(slot=st.integers(0, 1), stop=st.booleans())
    def stop_or_start(self, slot: int, stop: bool) -> None:
        """stop(timeout) asks to stop; start() takes a stopping scheduler back."""
        proc = self.procs[slot]
        if proc.status != "live":
            return
        self.budget["stops"] -= 1
        with proc.board.lock:
            if not proc.board.exiting:
                proc.board.stopping = stop

    @precondition(lambda self: self.budget["deaths"] > 0)
    @rule(slot=st.integers(0, 1))
    def process_dies(self, slot: int) -> None:
        """The process is killed: its claims lapse, another process recovers them."""
        proc = self.procs[slot]
        if proc.status == "dead":
            return
        self.budget["deaths"] -= 1
        proc.status = "dead"
        self.gone.append(proc.board)

    @precondition(lambda self: any(p.status != "live" for p in self.procs))
    @rule(slot=st.integers(0, 1))
    def process_starts(self, slot: int) -> None:
        """A new process (or a new scheduler) starts in place of a dead or exited one."""
        proc = self.procs[slot]
        if proc.status == "live":
            return
        if proc.status == "exited":
            self.gone.append(proc.board)  # its runaways' leases lapse
        self.procs[slot] = self.new_proc(slot)

    # -- the end: everything runs to completion ------------------------------------------

    def run_to_completion(self) -> None:
        """No faults, every job succeeds: every unfinished job must end (no wedge)."""
        for proc in self.procs:
            proc.backend.fail_steps = 0
        self.actor.plan = "success"
        for _ in range(80):
            for slot, proc in enumerate(self.procs):
                if proc.status != "live":
                    self.process_starts(slot)
                    proc = self.procs[slot]
                runner = proc.runner
                while runner.handed and runner.free_threads > 0:
                    runner.free_threads -= 1
                    runner.begin(runner.handed.pop(0))
                for token, task in list(proc.board.tasks.items()):
                    if task.state is TaskState.RUNNING or (task.state is TaskState.TIMED_OUT
                                                           and not task.ended):
                        self.worker_ends(slot, token, "success")
                self.keeper_renews(slot)
                self.turn(proc, 1000)
                self.check_invariants_now()
            stored = self.stored()
            if not any(j.state in UNFINISHED for j in stored.values()):
                succeeded = {o.claim.job.id for o in self.posted.values()
                             if isinstance(o, Success)}
                done = {j.id for j in stored.values() if j.state is JobState.DONE}
                assert done <= succeeded, f"jobs {done - succeeded} done, never succeeded"
                return
            self.elapse(5.0)
        left = {j.id: j.state.value for j in self.stored().values() if j.state in UNFINISHED}
        raise AssertionError(f"jobs {left} never finished (a wedge)")

    def check_invariants_now(self) -> None:
        self.one_running_per_queue_and_attempts()
        self.no_wedge()
        self.locks_belong_to_live_claims()


CommitterModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "150")), stateful_step_count=80,
    deadline=None, suppress_health_check=list(HealthCheck))
test_committer_model = CommitterModel.TestCase


class PostgresCommitterModel(CommitterModel):
    """The same on Postgres: a fresh schema per example (leases follow the fake clock)."""

    HOST_LEASES = False  # leases follow the database's clock: the fake wall clock here

    def open_database(self) -> list[Backend]:
        import psycopg

        from queuetopia_lite.postgres import PostgresBackend

        self.schema = f"qtl_test_{uuid.uuid4().hex[:12]}"
        url = pgserver.schema_url(self.schema)
        self.pg = psycopg.connect(pgserver.URL, autocommit=True)
        return [PostgresBackend(url) for _ in range(2)]

    def locks(self) -> dict[str, tuple[str, float]]:
        table = f'"{self.schema}".qt_queues'
        rows = self.pg.execute(LOCKS.format(table=table).replace("?", "%s"), (SCOPE,))
        return {queue: (token, until) for queue, token, until in rows.fetchall()}

    def close(self) -> None:
        for inner in self.inners:
            inner.close()
        self.pg.close()
        pgserver.drop_schema(self.schema)


def test_committer_model_postgres() -> None:
    pgserver.require_postgres()
    run_state_machine_as_test(PostgresCommitterModel, settings=settings(
        CommitterModel.TestCase.settings,
        max_examples=int(os.environ.get("MODEL_EXAMPLES_POSTGRES", "25"))))


# -- the model can fail: the old timeout race, replayed ----------------------------------


def old_absorb(self: Committer, events: list[tuple[Task, Outcome | None]]) -> None:
    """The old order: a runaway's release is sent as soon as its thread ends, ahead of what
    is pending (its timeout failure among it): "a Release always follows its Failure" was
    assumed, not enforced."""
    for task, outcome in events:
        if outcome is not None:
            self.pending.append(outcome)
        else:
            self.pending.insert(0, Release(task.claim))


def timeout_race(machine: CommitterModel) -> None:
    """A job times out, the step saving its failure fails, then its thread ends.

    Queue 'a' holds [job 1 (timeout, 3 attempts), job 2]; the committer's next turn
    has both the failure and the runaway's release to save.
    """
    machine.create("a", 3, 0.0, 1000.0)
    machine.create("a", 1, 0.0, None)
    proc = machine.procs[0]
    machine.turn(proc, 0)  # claims job 1
    (token,) = proc.board.tasks
    machine.worker_starts(0, 0)
    machine.deadline_passes(0, token)
    proc.backend.fail_steps = 1
    machine.turn(proc, 0)  # timed out: its failure is pending, the step failed
    machine.worker_ends(0, token, "success")  # the runaway's thread ends
    machine.turn(proc, 10)
    machine.check_invariants_now()


def test_the_committer_orders_a_runaways_release_after_its_failure() -> None:
    """The control: today's committer saves the failure, then the release."""
    machine = CommitterModel()
    timeout_race(machine)
    machine.turn(machine.procs[0], 10)  # saves the release
    machine.check_invariants_now()
    machine.teardown()  # runs everything to completion: job 2 after job 1


def test_the_model_catches_a_release_sent_before_its_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the old order the release reaches the database first: it is refused (the job
    still runs under that claim), the runaway's task leaves the board while its queue
    stays locked, and the queue waits for the lease to lapse. The model sees the lock
    that no process holds."""
    monkeypatch.setattr(Committer, "_absorb", old_absorb)
    machine = CommitterModel()
    try:
        with pytest.raises(AssertionError, match="locked by a claim no process holds"):
            timeout_race(machine)
    finally:
        machine.close()


def test_the_model_catches_the_old_timeout_race_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect as it was (issue 9, defect 1): the old order, and a database that took a
    release while the job still ran under its claim. The queue is released, job 2 becomes
    head and is claimed while job 1, about to be retried, is unfinished."""
    from queuetopia_lite.sqlite import transactions

    if "job_running" not in transactions.Q:
        pytest.fail("the SQLite release guard moved: point this test at its new place")
    monkeypatch.setattr(Committer, "_absorb", old_absorb)
    monkeypatch.setitem(transactions.Q, "job_running", "SELECT 1 WHERE 0")  # no guard
    machine = CommitterModel()
    try:
        with pytest.raises(AssertionError, match="not the head"):
            timeout_race(machine)
    finally:
        machine.close()


def test_a_replacement_thread_that_fails_to_start_wedges_no_timed_out_queue() -> None:
    """Two jobs time out in one turn and starting the first replacement worker raises
    (threads exhausted): both timeout failures are still pending, so both queues move on
    once the runaways end (the loop logs the error and turns again)."""
    machine = CommitterModel()
    machine.create("a", 1, 0.0, 1000.0)
    machine.create("b", 1, 0.0, 1000.0)
    proc = machine.procs[0]
    machine.turn(proc, 0)
    tokens = list(proc.board.tasks)
    for token in tokens:
        machine.worker_starts(0, 0)
        machine.deadline_passes(0, token)
    abandon = proc.runner.abandon

    def no_thread(task: Task) -> None:
        raise RuntimeError("can't start new thread")

    proc.runner.abandon = no_thread  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        machine.turn(proc, 0)
    proc.runner.abandon = abandon  # type: ignore[method-assign]
    assert len(proc.committer.pending) == 2
    machine.turn(proc, 0)
    for token in tokens:
        machine.worker_ends(0, token, "success")
    machine.turn(proc, 10)
    machine.check_invariants_now()
    machine.teardown()
