"""Large params, a connection carried across fork(), and a long-lived reader vs the WAL."""

from __future__ import annotations

import os
from pathlib import Path

import apsw
import pytest

from queuetopia_lite import InvalidJobError, JobState, Queuetopia
from queuetopia_lite.sqlite.connection import JOURNAL_SIZE_LIMIT
from queuetopia_lite.validation import MAX_PARAMS_BYTES

from .procs import integrity


def test_params_of_10_mb_round_trip_and_above_the_limit_are_refused(tmp_path: Path) -> None:
    ran: list[int] = []
    q = Queuetopia(tmp_path / "jobs.db", lambda job: ran.append(len(job.params["blob"])),
                   durability="normal")
    blob = "x" * (10 * 1024 * 1024)
    job = q.create_job("big", "a", {"blob": blob})
    assert q.drain() == 1 and ran == [len(blob)]
    done = q.get_job(job.id)
    assert done is not None and done.state == JobState.DONE and done.params["blob"] == blob
    with pytest.raises(InvalidJobError) as caught:
        q.create_job("big", "a", {"blob": "y" * MAX_PARAMS_BYTES})
    assert caught.value.field == "params" and str(MAX_PARAMS_BYTES) in str(caught.value)
    assert [j.id for j in q.list_jobs()] == [job.id]  # the refused one stored nothing
    q.close()


def test_queuetopia_used_in_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    db = os.fspath(tmp_path / "jobs.db")
    ran: list[int] = []
    q = Queuetopia(db, lambda job: ran.append(job.params["n"]), durability="normal")
    q.create_jobs([("parent", "a", {"n": n}) for n in range(50)])  # the connection is live
    pid = os.fork()
    if pid == 0:  # the child: a real workload on the inherited object, then out
        code = 1
        try:
            q.create_jobs([("child", "a", {"n": n}) for n in range(50)])
            code = 0 if q.drain() >= 50 else 2
        finally:
            os._exit(code)
    # The parent works on at the same time through its own (pre-fork) connection.
    for n in range(50, 100):
        q.create_job("parent", "a", {"n": n})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    q.drain()
    assert q.count_jobs()[JobState.DONE] == 150
    assert integrity(db) == "ok"
    q.close()


def wal_size(db: str) -> int:
    return os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0


def test_wal_stops_growing_once_a_long_reader_ends(tmp_path: Path) -> None:
    db = os.fspath(tmp_path / "jobs.db")
    q = Queuetopia(db, lambda job: None, durability="normal")
    reader = apsw.Connection(db)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM qt_jobs").fetchall()  # holds its snapshot
    for _batch in range(30):
        q.create_jobs([(f"q{n % 10}", "a", {"n": n, "pad": "p" * 200}) for n in range(100)])
        q.drain()
    during = wal_size(db)
    assert during > JOURNAL_SIZE_LIMIT  # the reader pinned every frame: the WAL grew
    reader.execute("COMMIT")
    reader.close()
    sizes = []
    for _batch in range(10):
        q.create_jobs([(f"q{n % 10}", "a", {"n": n, "pad": "p" * 200}) for n in range(100)])
        q.drain()
        sizes.append(wal_size(db))
    # Checkpoints run again: the WAL is reused from its start, no longer appended to,
    # and cut back to journal_size_limit.
    assert max(sizes[1:]) <= JOURNAL_SIZE_LIMIT
    assert sizes[-1] <= sizes[1]
    assert integrity(db) == "ok"
    q.close()
