"""Starting, killing and reading worker processes of the fault suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import apsw

from ..conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Line:
    """One line of a queue's log: a job attempt starting or ending."""

    kind: str  # "start" or "end"
    job_id: int
    n: int
    attempt: int
    pid: int
    at: float  # time.monotonic() in the worker


class Workers:
    """Worker processes (tests/faults/worker.py) on one database; all stopped at the end."""

    def __init__(self, db: str, logdir: Path, driver: str = "apsw") -> None:
        self.db = db
        self.driver = driver  # the SQLite library the workers open the file with
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()

    def start(self, *options: str, stderr: int | None = None,
              db: str | None = None) -> subprocess.Popen[bytes]:
        """Start a worker and wait until it is about to run (or has given up)."""
        opened = None
        if stderr is None:  # keep each worker's log in a file the test can read
            stderr = opened = os.open(self.logdir / f"stderr-{len(self.procs)}",
                                      os.O_WRONLY | os.O_CREAT, 0o644)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.worker", db or self.db, str(self.logdir),
             "--driver", self.driver, *options], cwd=ROOT, stderr=stderr)
        if opened is not None:
            os.close(opened)
        self.procs.append(proc)
        wait_until(lambda: str(proc.pid) in self.read("ready").split() or proc.poll() is not None,
                   message="worker ready")
        return proc

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        """What a worker started without an explicit stderr has logged so far."""
        return self.read(f"stderr-{self.procs.index(proc)}")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and reap it."""
        self.killed.add(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def alive(self) -> list[subprocess.Popen[bytes]]:
        """The workers still running."""
        return [p for p in self.procs if p.poll() is None]

    def read(self, name: str) -> str:
        """A log file's text ('' if it does not exist yet)."""
        path = self.logdir / name
        return path.read_text() if path.exists() else ""

    def log(self, queue: str) -> list[Line]:
        """The start and end lines of a queue, in the order they were written."""
        out = []
        for text in self.read(f"{queue}.log").splitlines():
            kind, job_id, n, attempt, pid, at = text.split()
            out.append(Line(kind, int(job_id), int(n) if n != "None" else -1, int(attempt),
                            int(pid), float(at)))
        return out

    def stop_all(self) -> None:
        """SIGTERM every worker (SIGCONT first: a stopped one cannot handle it)."""
        for proc in self.alive():
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def holds_write_lock(db: str) -> bool:
    """Whether some process holds the database's write lock right now."""
    conn = apsw.Connection(db)
    try:
        conn.execute("BEGIN IMMEDIATE")  # no busy timeout: fails at once if held
        conn.execute("ROLLBACK")
        return False
    except apsw.BusyError:
        return True
    finally:
        conn.close()


def freeze(proc: subprocess.Popen[bytes], db: str) -> None:
    """SIGSTOP a worker outside a write transaction (SPEC 4.6: frozen inside one, it would
    stall every writer until resumed, which is SQLite's nature, not what is tested here)."""
    for _ in range(200):
        proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: process_state(proc.pid) in ("T", "t"), message="process stopped")
        if not holds_write_lock(db):
            return
        proc.send_signal(signal.SIGCONT)
    raise AssertionError("the worker always held the write lock when frozen")


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def integrity(db: str) -> str:
    """PRAGMA integrity_check of a database file."""
    conn = apsw.Connection(db, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchall()[0][0])
    finally:
        conn.close()


def env_ok() -> bool:
    """Whether this platform can run the process tests (Linux /proc and signals)."""
    return sys.platform.startswith("linux") and os.path.isdir("/proc/self")
