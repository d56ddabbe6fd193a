"""I/O errors injected through a VFS shim: fail the Nth write, sync or read, N = 1, 2, 3...

Each call either succeeds or raises DatabaseError naming the file; afterwards the
file passes integrity_check, no accepted job is missing, nothing rejected was
stored, and a completion that failed to commit leaves the job to run again.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import apsw
import pytest

from queuetopia_lite import DatabaseError, InvalidJobError, Job, JobState, Queuetopia
from queuetopia_lite.backend import Claim, NewJob, Success
from queuetopia_lite.sqlite import SQLiteBackend

from ..conftest import wait_until
from . import faultyvfs
from .faultyvfs import PLAN
from .procs import integrity

SCOPE = "s"
NOW = 1_800_000_000.0
LEASE = 30.0
KINDS = ["write", "sync", "read"]
MAX_N = 300  # a bound on the loop; the operations below do far fewer I/O calls


def new_job(n: int) -> NewJob:
    return NewJob(queue="q", action="a", params=f'{{"n": {n}}}', scheduled_at=None,
                  timeout=None, max_backoff=10.0, max_attempts=5)


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    faultyvfs.register()
    yield
    PLAN.disarm()


class Case:
    """A fresh database with one job stored (and maybe claimed) without the shim.

    The operation under test opens its own connection through the shim, so its
    reads reach the file instead of a warm page cache.
    """

    def __init__(self, path: Path, claimed: bool) -> None:
        self.path = os.fspath(path)
        setup = SQLiteBackend(self.path)
        (self.job,) = setup.insert_jobs(SCOPE, [new_job(0)], NOW)
        self.claim: Claim | None = None
        if claimed:
            (self.claim,) = setup.step(SCOPE, NOW, claim=1, owner="w", lease=LEASE).claimed
        setup.close()
        self._backend: SQLiteBackend | None = None

    @property
    def backend(self) -> SQLiteBackend:
        """The backend through the shim, opened on first use."""
        if self._backend is None:
            self._backend = SQLiteBackend(self.path, vfs=faultyvfs.NAME, migrate=False,
                                          busy_timeout=0.1)
        return self._backend

    def states(self) -> dict[int, JobState]:
        """Every job's state, read through a fresh connection without the shim."""
        check = SQLiteBackend(self.path, migrate=False)
        try:
            return {j.id: j.state for j in check.list_jobs(SCOPE, NOW, limit=1000)}
        finally:
            check.close()


def inject(kind: str, case_dir: Path, claimed: bool,
           operation: Callable[[Case], object],
           check: Callable[[Case, bool], None]) -> tuple[int, int]:
    """Run ``operation`` with call N of ``kind`` failing, N = 1, 2... until it never fails.

    Returns (how many runs failed, how many succeeded).
    """
    failures = successes = 0
    for n in range(1, MAX_N):
        case = Case(case_dir / f"{kind}-{n}.db", claimed)
        PLAN.arm(kind, n)
        try:
            operation(case)
            ok = True
        except DatabaseError as exc:
            ok = False
            assert exc.path == case.path and case.path in str(exc)
            assert not str(exc).endswith(": "), f"an unclear message: {exc}"
        fired = PLAN.fired
        PLAN.disarm()
        if ok:
            successes += 1
        else:
            failures += 1
            assert fired, "an error without an injected fault"
        assert integrity(case.path) == "ok"
        check(case, ok)
        # the same backend goes on working once the fault is gone
        case.backend.insert_jobs(SCOPE, [new_job(99)], NOW)
        case.backend.close()
        if not fired:
            return failures, successes
    raise AssertionError(f"the operation still did {kind} number {MAX_N}")


APSW_ONLY = ("the VFS fault shim is an apsw VFS, which Python's sqlite3 cannot load: "
             "I/O faults are injected on driver='apsw' only")


@pytest.mark.parametrize("driver", ["apsw", pytest.param("sqlite3", marks=pytest.mark.skip(
    reason=APSW_ONLY))])
@pytest.mark.parametrize("kind", KINDS)
def test_enqueue_either_stores_the_job_or_raises_and_stores_nothing(
        kind: str, driver: str, tmp_path: Path) -> None:
    def check(case: Case, ok: bool) -> None:
        states = case.states()
        assert case.job.id in states  # the job accepted before the fault is still there
        assert len(states) == (2 if ok else 1)

    failures, _ = inject(kind, tmp_path, False,
                         lambda case: case.backend.insert_jobs(SCOPE, [new_job(1)], NOW), check)
    assert failures > 0


@pytest.mark.parametrize("kind", KINDS)
def test_claim_either_claims_or_leaves_the_job_available(kind: str, tmp_path: Path) -> None:
    def claim(case: Case) -> None:
        result = case.backend.step(SCOPE, NOW, claim=1, owner="w", lease=LEASE)
        assert [c.job.id for c in result.claimed] == [case.job.id]

    def check(case: Case, ok: bool) -> None:
        assert case.states()[case.job.id] == (JobState.RUNNING if ok else JobState.AVAILABLE)
        if not ok:  # nothing half-claimed: the next claim takes it
            (again,) = case.backend.step(SCOPE, NOW, claim=1, owner="w").claimed
            assert again.job.id == case.job.id and again.job.attempts == 1

    failures, _ = inject(kind, tmp_path, False, claim, check)
    assert failures > 0


@pytest.mark.parametrize("kind", KINDS)
def test_completion_that_fails_to_commit_runs_again(kind: str, tmp_path: Path) -> None:
    def complete(case: Case) -> None:
        assert case.claim is not None
        result = case.backend.step(SCOPE, NOW + 1, outcomes=[Success(case.claim)])
        assert not result.rejected

    def check(case: Case, ok: bool) -> None:
        assert case.states()[case.job.id] == (JobState.DONE if ok else JobState.RUNNING)
        if not ok:  # the lease ends, the attempt counts as lost, the job runs again
            later = NOW + LEASE + 1
            result = case.backend.step(SCOPE, later, claim=1, owner="w2")
            assert [j.id for j in result.failed] == [case.job.id]
            later += 60  # past the backoff
            (again,) = case.backend.step(SCOPE, later, claim=1, owner="w2").claimed
            assert again.job.id == case.job.id and again.job.attempts == 2

    failures, _ = inject(kind, tmp_path, True, complete, check)
    assert failures > 0


def test_scheduler_rides_out_io_errors_and_a_full_disk(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A write in every 1-20 fails, then the disk stays full a while: all jobs end done, once."""
    caplog.set_level(logging.ERROR, logger="queuetopia_lite")
    path = os.fspath(tmp_path / "jobs.db")
    ran: list[int] = []
    gate = threading.Event()

    def perform(job: Job) -> None:
        gate.wait(30)
        ran.append(job.params["n"])

    backend = SQLiteBackend(path, vfs=faultyvfs.NAME)
    q = Queuetopia(backend, perform, max_workers=2, poll_interval=0.5)
    accepted = []
    with q:
        try:
            rng = random.Random(6)
            PLAN.arm("write", rng.randint(1, 20))  # inserts and the scheduler's claims meet it
            for n in range(40):
                try:
                    # Two queues for two workers: while the disk is full both are locked,
                    # so a step that only claims finds nothing to write (and succeeds).
                    accepted.append(q.create_job(f"q{n % 2}", "a", {"n": n}).id)
                except DatabaseError:
                    pass  # refused: stored nothing, checked below
                if PLAN.fired:
                    PLAN.arm("write", rng.randint(1, 20))  # and again
            wait_until(lambda: q.count_jobs()[JobState.RUNNING] == 2, message="jobs running")
            # The disk fills up while two jobs run: their completions cannot be saved.
            PLAN.arm("write", 1, code=apsw.SQLITE_FULL, persistent=True)
            try:
                q.create_job("q0", "a", {"n": 100})
                raise AssertionError("a write succeeded on a full disk")
            except DatabaseError as exc:
                assert "disk is full" in str(exc) and path in str(exc)
            started = time.monotonic()
            gate.set()
            # The scheduler's fourth refused retry in a row announces a 0.8 s pause; the
            # three pauses before it (0.1 + 0.2 + 0.4 s) must really have been waited:
            # a spinning loop gets there in milliseconds.
            wait_until(lambda: any("retrying in 0.8 s" in r.getMessage()
                                   for r in list(caplog.records)),
                       message="completions refused four times")
            assert time.monotonic() - started >= 0.7
            PLAN.disarm()  # space comes back: the saved-up completions go through
            wait_until(lambda: q.count_jobs()[JobState.DONE] == len(accepted), timeout=60,
                       message="every accepted job done")
        finally:
            PLAN.disarm()  # a failing check must not leave stop() waiting on a full disk
            gate.set()
    stored = {j.id for j in q.list_jobs(limit=1000)}
    assert stored == set(accepted)  # none lost, none refused yet stored
    assert len(accepted) < 40  # some inserts really were refused
    assert sorted(ran) == sorted(set(ran))  # failed commits were retried, not re-run
    assert len(ran) == len(accepted)
    assert integrity(path) == "ok"
    q.close()


def test_the_vfs_shim_cannot_be_asked_of_the_sqlite3_driver(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobError, match="use driver='apsw'") as info:
        SQLiteBackend(tmp_path / "x.db", vfs=faultyvfs.NAME, driver="sqlite3")
    assert info.value.field == "vfs"
