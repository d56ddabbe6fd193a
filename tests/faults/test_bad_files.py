"""Corrupt, foreign, locked and read-only databases: a clear error naming the file,
workers stop (or back off) instead of spinning, nothing stored is lost or touched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from queuetopia_lite import DatabaseError, JobState, Queuetopia
from queuetopia_lite.sqlite import SQLiteBackend

from ..conftest import wait_until
from .procs import Workers


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stored_jobs(db: str, count: int) -> list[int]:
    """Create ``count`` jobs, close every connection (WAL checkpointed into the file)."""
    q = Queuetopia(db, durability="normal")
    ids = [j.id for j in q.create_jobs([("q", "ok", {"n": n}) for n in range(count)])]
    q.close()
    assert not os.path.exists(db + "-wal")
    return ids


def assert_stopped(workers: Workers, proc: subprocess.Popen[bytes], db: str,
                   problem: str) -> None:
    proc.wait(30)
    assert proc.returncode == 3
    (line,) = workers.read("stopped").splitlines()
    assert f"{db}: {problem}" in line, line


def test_corrupt_database_stops_the_worker_with_a_clear_error(workers: Workers) -> None:
    stored_jobs(workers.db, 50)
    with open(workers.db, "r+b") as f:  # keep the header and schema page, ruin the rest
        f.seek(4096 * 2)
        f.write(b"\xa5" * 4096 * 4)
    before = digest(workers.db)
    proc = workers.start()
    assert_stopped(workers, proc, workers.db, "the database file is corrupt")
    assert digest(workers.db) == before  # the worker wrote nothing into the damaged file


def test_file_that_is_not_a_database_stops_the_worker(workers: Workers) -> None:
    with open(workers.db, "wb") as f:
        f.write(b"this is the user's precious text file, not a database\n" * 100)
    before = digest(workers.db)
    proc = workers.start()
    assert_stopped(workers, proc, workers.db, "not a database file")
    assert digest(workers.db) == before


def test_database_locked_longer_than_the_busy_timeout(workers: Workers) -> None:
    ids = stored_jobs(workers.db, 20)
    producer = Queuetopia(SQLiteBackend(workers.db, busy_timeout=0.1))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import apsw, sys\n"
         f"c = apsw.Connection({workers.db!r}); c.execute('BEGIN IMMEDIATE')\n"
         "c.execute('CREATE TABLE hold (x)')\n"
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        proc = workers.start("--busy-timeout", "0.1")
        with pytest.raises(DatabaseError) as caught:
            producer.create_job("q", "ok", {"n": 99})
        assert caught.value.path == workers.db and "database is locked" in str(caught.value)
        wait_until(lambda: "database is locked" in workers.stderr(proc), timeout=30,
                   message="the worker met the lock")
        assert proc.poll() is None  # waiting can cure a lock: the worker backs off, lives
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder ends: its transaction rolls back
        holder.wait(10)
    errors = workers.stderr(proc).count("database is locked")
    # Backing off: one error per whole-transaction retry cycle (seconds), not a hot loop.
    assert errors <= 10
    wait_until(lambda: producer.count_jobs()[JobState.DONE] == 20, timeout=60,
               message="jobs done once the lock is gone")
    assert sorted(j.id for j in producer.list_jobs()) == ids  # the refused job is absent
    producer.close()


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/ro: a read-only bind mount of tmp_path/rw (root ignores file modes)."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    made = subprocess.run(["mount", "--bind", rw, ro], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", ro], check=True)
        yield ro
    finally:
        subprocess.run(["umount", ro], check=True)


def test_read_only_database_stops_the_worker(workers: Workers, read_only_view: Path) -> None:
    rw = read_only_view.parent / "rw"
    ids = stored_jobs(os.fspath(rw / "jobs.db"), 10)
    db = os.fspath(read_only_view / "jobs.db")
    proc = workers.start(db=db)
    proc.wait(30)
    assert proc.returncode == 3
    (line,) = workers.read("stopped").splitlines()
    assert db in line and ("read-only" in line or "cannot open" in line), line
    # Nothing lost: the jobs are all there and untouched.
    q = Queuetopia(os.fspath(rw / "jobs.db"))
    assert sorted(j.id for j in q.list_jobs()) == ids
    assert q.count_jobs()[JobState.AVAILABLE] == 10
    q.close()
