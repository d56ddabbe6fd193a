"""A worker process for multi-process tests; it checks the library from the outside.

Usage: python -m tests.multiprocess.worker DB LOGDIR [--max-workers N] [--lease S] [--backoff S]

For every job it takes a per-queue exclusive file lock (a second holder means two jobs
of one queue ran at once: written to LOGDIR/overlaps), and appends fsynced "start" and
"end" lines to LOGDIR/<queue>.log. It runs until SIGTERM or SIGINT. It never polls
periodically (poll_interval is an hour): every job it runs was found by a wake-up.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import time

from queuetopia_lite import Job, Performer, Queuetopia


def append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Checked(Performer):
    def __init__(self, logdir: str, backoff: float) -> None:
        super().__init__()
        self.logdir = logdir
        self._backoff = backoff
        self.register("ok", lambda job: None)
        self.register("sleep", lambda job: time.sleep(job.params["seconds"]))
        self.register("hang_once", self._hang_once)

    def _hang_once(self, job: Job) -> None:
        """Hang on the first attempt (the test kills us); return on later ones."""
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
            append(log, f"start {job.id} {job.params.get('n')} {job.attempts} {os.getpid()}")
            result = super().perform(job)
            append(log, f"end {job.id} {job.params.get('n')} {job.attempts} {os.getpid()}")
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
    args = parser.parse_args()
    q = Queuetopia(args.db, Checked(args.logdir, args.backoff), max_workers=args.max_workers,
                   lease=args.lease, poll_interval=3600.0, durability="normal")
    append(os.path.join(args.logdir, "ready"), str(os.getpid()))
    q.run()


if __name__ == "__main__":
    main()
