"""A worker process for the fault suite; it checks the library from the outside.

Usage: python -m tests.faults.worker DB LOGDIR [--max-workers N] [--lease S] [--backoff S]
    [--driver apsw|sqlite3]

Every job takes a per-queue exclusive flock (finding it held means two jobs of one
queue ran at once: a line in LOGDIR/overlaps) and appends fsynced lines to
LOGDIR/<queue>.log: ``start ID N ATTEMPT PID T`` before the action and
``end ID N ATTEMPT PID T`` after it, T being time.monotonic() (system-wide on Linux).
Faulty actions: ``exit`` (os._exit), ``system_exit``, ``interrupt`` (KeyboardInterrupt),
``hang_once`` (sleeps for an hour on its first attempt), ``sleep``,
``sleep_once`` (sleeps on its first attempt only).
Runs until SIGTERM; on a database error that stops it (at open or from the scheduler)
it writes LOGDIR/stopped and exits 3.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time

from queuetopia_lite import DatabaseError, Job, Performer, Queuetopia
from queuetopia_lite.sqlite import SQLiteBackend


def append(path: str, line: str) -> None:
    """Append one line and fsync it: the log must survive our own SIGKILL."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)




def _sleep_once(job: Job) -> None:
    if job.attempts == 1:
        time.sleep(job.params["seconds"])


def _exit(job: Job) -> None:
    os._exit(7)


def _system_exit(job: Job) -> None:
    raise SystemExit(5)


def _interrupt(job: Job) -> None:
    raise KeyboardInterrupt


class Checked(Performer):
    """Runs the test actions inside the outside-the-library checks."""

    def __init__(self, logdir: str, backoff: float) -> None:
        super().__init__()
        self.logdir = logdir
        self._backoff = backoff
        self.register("ok", lambda job: None)
        self.register("sleep", lambda job: time.sleep(job.params["seconds"]))
        self.register("hang_once", self._hang_once)
        self.register("sleep_once", _sleep_once)
        self.register("exit", _exit)
        self.register("system_exit", _system_exit)
        self.register("interrupt", _interrupt)

    def _hang_once(self, job: Job) -> None:
        """Hang on the first attempt (tests kill us then; LOGDIR/hanging says when)."""
        if job.attempts == 1:
            append(os.path.join(self.logdir, "hanging"), str(os.getpid()))
            time.sleep(3600)

    def backoff(self, job: Job) -> float:
        return self._backoff

    def perform(self, job: Job) -> object:
        lock_fd = os.open(os.path.join(self.logdir, f"{job.queue}.lock"),
                          os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                append(os.path.join(self.logdir, "overlaps"), f"{job.queue} {job.id}")
            log = os.path.join(self.logdir, f"{job.queue}.log")
            tail = f"{job.id} {job.params.get('n')} {job.attempts} {os.getpid()}"
            append(log, f"start {tail} {time.monotonic():.6f}")
            result = super().perform(job)
            append(log, f"end {tail} {time.monotonic():.6f}")
            return result
        finally:
            os.close(lock_fd)  # closing drops the flock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("logdir")
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--backoff", type=float, default=0.05)
    parser.add_argument("--durability", default="normal")
    parser.add_argument("--busy-timeout", type=float, default=5.0)
    parser.add_argument("--driver", default="apsw")
    args = parser.parse_args()
    try:
        backend = SQLiteBackend(args.db, durability=args.durability,
                                busy_timeout=args.busy_timeout, driver=args.driver)
        q = Queuetopia(backend, Checked(args.logdir, args.backoff),
                       max_workers=args.max_workers, lease=args.lease, poll_interval=3600.0)
        append(os.path.join(args.logdir, "ready"), str(os.getpid()))
        q.run()
    except DatabaseError as exc:
        append(os.path.join(args.logdir, "ready"), str(os.getpid()))
        append(os.path.join(args.logdir, "stopped"), f"{os.getpid()} {exc}")
        sys.exit(3)


if __name__ == "__main__":
    main()
