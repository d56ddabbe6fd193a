"""Crash consistency: copies of the live files taken while every writer is frozen.

A copy of the database and its WAL taken at an arbitrary instant is what a
crash leaves behind (minus unsynced writes, which a process crash keeps). Each
copy must open, pass integrity_check and hold every acknowledged job.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import apsw

from queuetopia_lite import Queuetopia

from ..conftest import wait_until
from .procs import ROOT, Workers, process_state

FREEZES = 12


def test_copies_taken_at_random_frozen_moments_are_whole(
        workers: Workers, tmp_path: Path) -> None:
    Queuetopia(workers.db).close()  # the schema, before anyone races to create it
    producers = [subprocess.Popen(
        [sys.executable, "-m", "tests.faults.producer", workers.db,
         os.fspath(workers.logdir / f"acked-{i}"), f"p{i}-"], cwd=ROOT) for i in range(2)]
    writers = [*producers, workers.start("--durability", "full", "--max-workers", "2")]
    rng = random.Random()
    copies = []
    try:
        wait_until(lambda: all(workers.read(f"acked-{i}") for i in range(2)),
                   message="producers running")
        for k in range(FREEZES):
            try:
                wait_until(lambda: False, timeout=rng.uniform(0.05, 0.4))
            except AssertionError:
                pass  # a random moment
            for proc in writers:
                proc.send_signal(signal.SIGSTOP)
            for proc in writers:
                wait_until(lambda p=proc: process_state(p.pid) in ("T", "t"), message="frozen")
            acked = [int(x) for i in range(2) for x in workers.read(f"acked-{i}").split()]
            snap = tmp_path / f"copy-{k}"
            snap.mkdir()
            for suffix in ("", "-wal"):  # not -shm: it is rebuilt from the WAL on open
                if os.path.exists(workers.db + suffix):
                    shutil.copyfile(workers.db + suffix, snap / ("jobs.db" + suffix))
            for proc in writers:
                proc.send_signal(signal.SIGCONT)
            copies.append((snap / "jobs.db", acked))
    finally:
        for proc in producers:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
    assert all(p.returncode == -signal.SIGKILL for p in producers)  # none died on its own
    for path, acked in copies:
        conn = apsw.Connection(os.fspath(path))
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in conn.execute("SELECT id FROM qt_jobs")}
        missing = set(acked) - stored
        assert not missing, f"{path}: acknowledged jobs missing: {sorted(missing)[:10]}"
        conn.close()
    assert len(copies[-1][1]) > 100  # the producers really were writing
