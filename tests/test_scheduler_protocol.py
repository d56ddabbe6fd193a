"""The committer's protocol with real threads: timeouts keep order, bad outcomes hold back
nothing, stop() and start() behave, and a fork()ed child runs its own scheduler."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from queuetopia_lite import Backend, GiveUp, Job, JobState, Performer, Queuetopia

from .conftest import MakeQ, wait_until


class Timeline(Performer):
    """Records each attempt's start and end per queue; retries after 10 ms."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.events: dict[str, list[tuple[str, int, int]]] = defaultdict(list)

    def mark(self, job: Job, what: str) -> None:
        with self.lock:
            self.events[job.queue].append((what, job.id, job.attempts))

    def backoff(self, job: Job) -> float:
        return 0.01


def committer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "queuetopia-committer"]


def test_a_job_ending_just_after_its_timeout_is_never_overtaken(make_q: MakeQ) -> None:
    """Issue 9 defect 1: the runaway's release used to land before its timeout failure."""
    perf = Timeline()

    @perf.action("slow")
    def slow(job: Job) -> None:
        perf.mark(job, "start")
        if job.attempts == 1:
            time.sleep(0.05)  # ends a few ms after its 0.05 s timeout
        perf.mark(job, "end")

    @perf.action("fast")
    def fast(job: Job) -> None:
        perf.mark(job, "start")
        perf.mark(job, "end")

    q = make_q(perf, max_workers=4)
    jobs = q.create_jobs([item for i in range(150) for item in (
        {"queue": f"q{i}", "action": "slow", "timeout": 0.05},
        {"queue": f"q{i}", "action": "fast"})])
    with q:
        wait_until(lambda: q.count_jobs()[JobState.DONE] == len(jobs), timeout=120,
                   message="every job done")
    for queue, events in perf.events.items():
        slow_id = min(job_id for _, job_id, _ in events)
        depth = 0
        for what, _, _ in events:  # attempts of one queue never overlap
            depth += 1 if what == "start" else -1
            assert depth in (0, 1), f"{queue} ran two attempts at once: {events}"
        last_slow_end = max(i for i, (what, job_id, _) in enumerate(events)
                            if what == "end" and job_id == slow_id)
        fast_start = next(i for i, (what, job_id, _) in enumerate(events)
                          if what == "start" and job_id != slow_id)
        assert fast_start > last_slow_end, f"{queue}: the next job overtook: {events}"


UNSTORABLE = "cannot open " + os.fsdecode(b"report-\xff.csv") + " (\x00)"


def unstorable_performer() -> Performer:
    perf = Performer()

    @perf.action("bad")
    def bad(job: Job) -> None:
        raise OSError(UNSTORABLE)

    @perf.action("ok")
    def ok(job: Job) -> None:
        pass

    return perf


def test_an_error_text_the_database_cannot_store_holds_back_nothing(make_q: MakeQ) -> None:
    """Issue 9 defect 2: a lone surrogate or a NUL in an error wedged the scheduler."""
    q = make_q(unstorable_performer(), max_workers=2)
    bad = q.create_job("a", "bad", max_attempts=1)
    oks = q.create_jobs([(f"b{i}", "ok", {}) for i in range(20)])
    q.start()
    wait_until(lambda: q.count_jobs()[JobState.DONE] == len(oks), message="other queues done")
    wait_until(lambda: q.count_jobs()[JobState.FAILED] == 1, message="the bad job failed")
    q.stop(timeout=10)
    assert not q._scheduler.running  # type: ignore[union-attr]  # stop() settled
    stored = q.get_job(bad.id)
    assert stored is not None and stored.error is not None
    assert "report-\\udcff.csv" in stored.error and "\\x00" in stored.error


def test_a_give_up_with_an_unstorable_reason_still_gives_up(make_q: MakeQ) -> None:
    """Found by the committer model: GiveUp's reason was saved as given, so a lone
    surrogate failed the step, and the committer's plain-text fallback dropped give_up:
    the job was retried (here: run 3 times) instead of failing at once."""
    runs: list[int] = []
    perf = Performer()

    @perf.action("give_up")
    def give_up(job: Job) -> None:
        runs.append(job.attempts)
        raise GiveUp(os.fsdecode(b"report-\xff.csv") + " (\x00)")

    q = make_q(perf)
    job = q.create_job("a", "give_up", max_attempts=3)
    q.start()
    wait_until(lambda: q.get_job(job.id).state == JobState.FAILED,  # type: ignore[union-attr]
               message="the job failed")
    q.stop(timeout=10)
    stored = q.get_job(job.id)
    assert stored is not None and runs == [1]
    assert stored.error == "report-\\udcff.csv (\\x00)"


def test_drain_stores_an_unstorable_error_text_escaped(make_q: MakeQ) -> None:
    q = make_q(unstorable_performer())
    bad = q.create_job("a", "bad", max_attempts=1)
    assert q.drain() == 1
    stored = q.get_job(bad.id)
    assert stored is not None and stored.state == JobState.FAILED
    assert stored.error is not None and "report-\\udcff.csv" in stored.error


def test_stop_with_a_timeout_leaves_no_busy_loop_and_start_takes_it_back(make_q: MakeQ) -> None:
    """Issue 9 defect 3: a timed-out stop() left a hot loop; start() then made a second one."""
    gate = threading.Event()
    perf = Performer()
    perf.register("wait", lambda job: gate.wait(30))
    perf.register("ok", lambda job: None)
    q = make_q(perf, max_workers=2)
    waiting = q.create_job("a", "wait")
    q.start()
    wait_until(lambda: q.count_jobs()[JobState.RUNNING] == 1, message="job running")
    q.stop(timeout=0.05)  # returns while the job still runs
    scheduler = q._scheduler
    assert scheduler is not None and scheduler.running  # it finishes in the background
    before = scheduler.iterations
    time.sleep(0.3)  # a window to count loop turns in, not a wait for a condition
    assert scheduler.iterations - before < 20, "the stopping scheduler spins"
    q.start()  # takes the stopping scheduler back
    assert len(committer_threads()) == 1
    later = q.create_job("b", "ok")
    wait_until(lambda: q.get_job(later.id).state == JobState.DONE,  # type: ignore[union-attr]
               message="a job created after start() runs")
    gate.set()
    wait_until(lambda: q.get_job(waiting.id).state == JobState.DONE,  # type: ignore[union-attr]
               message="the waiting job done")
    q.stop(timeout=10)
    assert committer_threads() == []


def test_stop_does_not_wait_for_a_runaway_but_its_queue_stays_locked(make_q: MakeQ,
                                                                      backend: Backend) -> None:
    """Issue 9 defect 4: stop() waited for a job stuck past its timeout."""
    gate = threading.Event()
    perf = Performer()
    perf.register("stuck", lambda job: gate.wait(60))
    perf.register("ok", lambda job: None)
    q = make_q(perf, lease=0.6)
    stuck = q.create_job("a", "stuck", timeout=0.05)
    after = q.create_job("a", "ok")
    q.start()
    wait_until(lambda: (q.get_job(stuck.id).error or "").startswith("timeout"),  # type: ignore[union-attr]
               message="the timeout recorded")
    stopper = threading.Thread(target=q.stop)
    stopper.start()
    stopper.join(10)
    try:
        assert not stopper.is_alive(), "stop() waits for a runaway job"
        # While the runaway's thread lives in this process, its queue stays locked: another
        # scheduler runs nothing of queue 'a', even well past the lease.
        other = make_q(perf, lease=0.6)
        other.start()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert q.get_job(after.id).state != JobState.DONE  # type: ignore[union-attr]
            time.sleep(0.05)
    finally:
        gate.set()
    wait_until(lambda: q.get_job(after.id).state == JobState.DONE,  # type: ignore[union-attr]
               message="the queue moves on once the runaway ended")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_its_own_scheduler(tmp_path: Path) -> None:
    """Issue 9 defect 5: run() in a fork()ed child returned at once."""
    path = os.fspath(tmp_path / "jobs.db")
    perf = Performer()
    perf.register("ok", lambda job: None)
    q = Queuetopia(path, perf, durability="normal", poll_interval=60)
    q.start()
    try:
        pid = os.fork()
        if pid == 0:  # the child: run() must serve until SIGTERM
            code = 1
            try:
                job = q.create_job("child", "ok")

                def stop_when_done() -> None:
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline:
                        if q.get_job(job.id).state == JobState.DONE:  # type: ignore[union-attr]
                            break
                        time.sleep(0.01)
                    os.kill(os.getpid(), signal.SIGTERM)

                threading.Thread(target=stop_when_done, daemon=True).start()
                started = time.monotonic()
                q.run()
                done = q.get_job(job.id).state == JobState.DONE  # type: ignore[union-attr]
                code = 0 if done and time.monotonic() - started > 0 else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(waited[1]) == 0
    finally:
        q.stop(timeout=10)
        q.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_listens_for_notifications_on_postgres(
        request: pytest.FixtureRequest) -> None:
    """Issue 9 defect 5: the LISTEN thread was not made again in a fork()ed child."""
    from queuetopia_lite.postgres import PostgresBackend

    from . import pgserver

    backend = PostgresBackend(pgserver.schema_url(pgserver.fresh_schema(request)))
    perf = Performer()
    perf.register("ok", lambda job: None)
    parent = Queuetopia(backend, perf, poll_interval=3600)
    parent.start()  # the parent listens too
    wait_until(lambda: backend.change_counter() > 0, message="the parent's listener")
    ready_r, ready_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # the child: only a notification can start the job (poll: 1 hour)
            code = 1
            try:
                child = Queuetopia(backend, perf, scope="child", poll_interval=3600)
                done = threading.Event()

                def watch() -> None:
                    deadline = time.monotonic() + 20
                    while child._scheduler is None or child._scheduler.iterations < 2:
                        time.sleep(0.01)  # its first looks are over: it sleeps for an hour
                    os.write(ready_w, b"x")
                    while time.monotonic() < deadline and not done.is_set():
                        if any(j.state == JobState.DONE for j in child.list_jobs()):
                            done.set()
                        time.sleep(0.01)
                    os.kill(os.getpid(), signal.SIGTERM)

                threading.Thread(target=watch, daemon=True).start()
                child.run()
                code = 0 if done.is_set() else 2
            finally:
                os._exit(code)
        assert os.read(ready_r, 1) == b"x"
        Queuetopia(backend, scope="child").create_job("q", "ok")  # NOTIFY at its commit
        deadline = time.monotonic() + 30
        while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(waited[1]) == 0, "the job did not run in the child"
    finally:
        os.close(ready_r)
        os.close(ready_w)
        parent.stop(timeout=10)
        backend.close()


def test_no_busy_loop_while_our_own_lease_looks_expired(make_q: MakeQ) -> None:
    """After a forward clock jump, our running job's lease looks expired: a step can do
    nothing about it (our own claim), and the committer must not spin on it."""
    offset = [0.0]
    gate = threading.Event()
    perf = Performer()
    perf.register("wait", lambda job: gate.wait(30))
    q = make_q(perf, lease=5.0, clock=lambda: time.time() + offset[0])
    job = q.create_job("a", "wait")
    q.start()
    try:
        wait_until(lambda: q.get_job(job.id).state == JobState.RUNNING,  # type: ignore[union-attr]
                   message="job running")
        offset[0] = 60.0  # past the lease
        q.notify()
        scheduler = q._scheduler
        assert scheduler is not None
        before = scheduler.iterations
        time.sleep(0.5)  # a window to count loop turns in
        assert scheduler.iterations - before < 30, "the committer spins"
    finally:
        gate.set()
    wait_until(lambda: q.get_job(job.id).state == JobState.DONE,  # type: ignore[union-attr]
               message="the job's own result saved")


class SlotCheck(Performer):
    """Sync and async actions that count how many perform at once, and a stuck one."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.performing = 0
        self.peak = 0
        self.release = threading.Event()

        @self.action("sync")
        def sync(job: Job) -> None:
            self.enter()
            time.sleep(0.005)
            self.leave()

        @self.action("aio")
        async def aio(job: Job) -> None:
            self.enter()
            await asyncio.sleep(0.005)
            self.leave()

        @self.action("stuck")
        def stuck(job: Job) -> None:
            self.enter()
            self.release.wait(30)  # a runaway past its timeout

    def enter(self) -> None:
        with self.lock:
            self.performing += 1
            self.peak = max(self.peak, self.performing)

    def leave(self) -> None:
        with self.lock:
            self.performing -= 1


def test_max_workers_bounds_sync_and_async_jobs_together(make_q: MakeQ) -> None:
    """Sync jobs on threads and async ones on the loop: never more than max_workers
    perform at once, together."""
    perf = SlotCheck()
    q = make_q(perf, max_workers=2)
    jobs = q.create_jobs([(f"q{i}", "sync" if i % 3 else "aio") for i in range(60)])
    with q:
        wait_until(lambda: all(q.get_job(j.id).state is JobState.DONE  # type: ignore[union-attr]
                               for j in jobs), message="every job done")
    assert perf.peak == 2


def test_a_runaway_gives_its_slot_back_at_its_timeout(make_q: MakeQ) -> None:
    """With one worker, a job stuck past its timeout keeps its thread but not its slot:
    the other jobs run while it is still stuck."""
    perf = SlotCheck()
    q = make_q(perf, max_workers=1)
    stuck = q.create_job("stuck", "stuck", timeout=0.05, max_attempts=1)
    jobs = q.create_jobs([(f"q{i}", "sync" if i % 2 else "aio") for i in range(10)])
    try:
        with q:
            wait_until(lambda: all(q.get_job(j.id).state is JobState.DONE  # type: ignore[union-attr]
                                   for j in jobs), message="the others ran beside the runaway")
            assert not perf.release.is_set()
            assert q.get_job(stuck.id).state is JobState.FAILED  # type: ignore[union-attr]
    finally:
        perf.release.set()
    assert perf.peak == 2  # the runaway and one job: the runaway no longer counts

