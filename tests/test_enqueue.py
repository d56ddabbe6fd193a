"""Concurrent creators share commits (group commit), and each call stays all-or-nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from queuetopia_lite import Backend, DatabaseError, Queuetopia
from queuetopia_lite.backend import NewJob
from queuetopia_lite.enqueue import Enqueuer
from queuetopia_lite.job import Job

from .conftest import wait_until


class CountingBackend:
    """Delegates to a real backend and counts insert transactions (or fails them)."""

    def __init__(self, real: Backend) -> None:
        self.real = real
        self.transactions = 0
        self.fail = False
        self.gate = threading.Event()

    def insert_jobs(self, scope: str, jobs: list[NewJob], now: float) -> list[Job]:
        self.gate.wait(10)  # lets the other creators line up behind the first
        self.transactions += 1
        if self.fail:
            raise DatabaseError("test.db", "the disk is full")
        return self.real.insert_jobs(scope, jobs, now)


def test_concurrent_creators_share_transactions_and_get_their_own_jobs(
        backend: Backend) -> None:
    counting = CountingBackend(backend)
    enqueuer = Enqueuer(counting, "s", lambda: 1_800_000_000.0)  # type: ignore[arg-type]
    results: dict[int, list[Job]] = {}

    def create(k: int) -> None:
        new = [NewJob(f"q{k}", "act", f'{{"k": {k}, "i": {i}}}', None, 60.0, 10.0, 3)
               for i in range(3)]
        results[k] = enqueuer.insert(new)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    # The first writes (held at the gate); the seven others line up behind it.
    wait_until(lambda: len(enqueuer._combiner._waiting) == 7, message="seven waiting creators")
    counting.gate.set()
    for thread in threads:
        thread.join(10)
    assert counting.transactions == 2  # the first call alone, then the seven together
    for k, jobs in results.items():
        assert [(j.queue, j.params) for j in jobs] == [(f"q{k}", {"k": k, "i": i})
                                                      for i in range(3)]
    assert len({j.id for jobs in results.values() for j in jobs}) == 24


def test_a_failed_shared_transaction_fails_every_caller_in_it_and_stores_nothing(
        backend: Backend) -> None:
    counting = CountingBackend(backend)
    counting.fail = True
    enqueuer = Enqueuer(counting, "s", lambda: 1_800_000_000.0)  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def create(k: int) -> None:
        try:
            enqueuer.insert([NewJob(f"q{k}", "act", "{}", None, 60.0, 10.0, 3)])
        except DatabaseError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    counting.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 4
    assert backend.list_jobs("s", 1_800_000_000.0) == []


def test_creating_from_many_threads_stores_every_job_once(tmp_path: Path) -> None:
    q = Queuetopia(tmp_path / "jobs.db", durability="normal")
    ids: list[int] = []
    lock = threading.Lock()

    def create(k: int) -> None:
        for i in range(50):
            job = q.create_job(f"q{k % 3}", "act", {"k": k, "i": i})
            with lock:
                ids.append(job.id)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stored = q.list_jobs(limit=1000)
    assert sorted(ids) == sorted(j.id for j in stored) and len(set(ids)) == 400
    for k in range(8):  # each creator's jobs keep its order within its queue
        mine = sorted((j for j in stored if j.params["k"] == k), key=lambda j: j.id)
        assert [j.params["i"] for j in mine] == list(range(50))
    q.close()


@pytest.fixture
def backend(tmp_path: Path) -> Backend:  # SQLite is enough: the combining is above backends
    from queuetopia_lite.sqlite import SQLiteBackend

    return SQLiteBackend(tmp_path / "jobs.db", durability="normal")


def test_concurrent_writes_share_a_transaction_and_a_failing_one_leaves_nothing(
        tmp_path: Path) -> None:
    from queuetopia_lite.sqlite.connection import Connections

    conns = Connections(str(tmp_path / "w.db"), "normal")
    conns.write(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
    gate = threading.Event()
    outcomes: dict[int, object] = {}

    def first(conn: object) -> str:
        gate.wait(10)  # the others line up behind this write
        return "first"

    def body(k: int) -> object:
        def insert(conn: object) -> int:
            conn.execute("INSERT INTO t VALUES (?)", (k,))  # type: ignore[attr-defined]
            if k == 2:
                raise ValueError("refused")
            return k
        return insert

    def call(k: int) -> None:
        try:
            outcomes[k] = conns.write(first if k == 0 else body(k))  # type: ignore[arg-type]
        except ValueError as exc:
            outcomes[k] = exc

    threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    threads[0].start()
    wait_until(lambda: conns._writes._busy, message="the first write under way")
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(conns._writes._waiting) == 3, message="three waiting writes")
    gate.set()
    for thread in threads:
        thread.join(10)
    assert outcomes[0] == "first" and outcomes[1] == 1 and outcomes[3] == 3
    assert isinstance(outcomes[2], ValueError)  # its own error; its insert rolled back
    rows = conns.read(lambda conn: conn.execute("SELECT x FROM t ORDER BY x").fetchall())
    assert [tuple(r) for r in rows] == [(1,), (3,)]
    conns.close_all()
