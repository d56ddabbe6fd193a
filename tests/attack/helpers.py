"""Shared helpers of the attack tests: real files, real threads, deadlines instead of sleeps."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from queuetopia_lite import Job, Performer


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until truthy or the deadline passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


class Tracker(Performer):
    """Records start/end instants per job and concurrent runs per queue."""

    def __init__(self, backoff: float | Callable[[Job], float] | None = None) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.starts: dict[int, list[float]] = {}
        self.wall_starts: dict[int, float] = {}
        self.ends: dict[int, float] = {}
        self.running: dict[str, int] = {}
        self.overlaps: list[tuple[str, int]] = []
        self.hooks: list[Job] = []
        self.gates: dict[str, threading.Event] = {}
        self._backoff_value = backoff
        self.register("ok", lambda job: None)
        self.register("fail", self._fail)
        self.register("sleep", lambda job: time.sleep(job.params["seconds"]))
        self.register("gate", self._gate)

    def gate(self, name: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def _gate(self, job: Job) -> None:
        self.gate(job.params["gate"]).wait(30)

    @staticmethod
    def _fail(job: Job) -> None:
        raise RuntimeError(f"boom {job.attempts}")

    def perform(self, job: Job) -> Any:
        with self.lock:
            self.starts.setdefault(job.id, []).append(time.monotonic())
            self.wall_starts.setdefault(job.id, time.time())
            self.running[job.queue] = self.running.get(job.queue, 0) + 1
            if self.running[job.queue] > 1:
                self.overlaps.append((job.queue, job.id))
        try:
            return super().perform(job)
        finally:
            with self.lock:
                self.running[job.queue] -= 1
                self.ends[job.id] = time.monotonic()

    def backoff(self, job: Job) -> float:
        from queuetopia_lite.backend import default_backoff

        b = self._backoff_value
        if b is None:
            return default_backoff(job)
        if callable(b):
            return b(job)
        return b

    def handle_failed_job(self, job: Job) -> None:
        with self.lock:
            self.hooks.append(job)

    def started(self, job_id: int) -> bool:
        with self.lock:
            return job_id in self.starts
