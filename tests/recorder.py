"""A performer for scheduler tests that records what ran, and checks overlap per queue."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any, Callable

from queuetopia_lite import Job, Performer


class Recorder(Performer):
    """Actions: ok, fail (always), fail_until (params["succeed_at"] attempt), sleep, wait, exit."""

    def __init__(self, backoff: float | None = 0.05) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.ran: list[tuple[str, Any]] = []  # (queue, params["n"]) in start order
        self.failed_hooks: list[Job] = []
        self.running: dict[str, int] = defaultdict(int)
        self.overlaps: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self._backoff = backoff
        self.register("ok", self._ok)
        self.register("charge", self._ok)  # the README's shop examples
        self.register("fail", self._fail)
        self.register("fail_until", self._fail_until)
        self.register("sleep", self._sleep)
        self.register("wait", self._wait)
        self.register("raise_base", self._raise_base)

    def perform(self, job: Job) -> object:
        with self.lock:
            self.running[job.queue] += 1
            if self.running[job.queue] > 1:
                self.overlaps.append(job.queue)
            self.ran.append((job.queue, job.params.get("n")))
        try:
            return super().perform(job)
        finally:
            with self.lock:
                self.running[job.queue] -= 1

    def backoff(self, job: Job) -> float:
        if self._backoff is None:
            from queuetopia_lite.backend import default_backoff
            return default_backoff(job)
        return self._backoff

    def handle_failed_job(self, job: Job) -> None:
        with self.lock:
            self.failed_hooks.append(job)

    def count(self, queue: str | None = None) -> int:
        with self.lock:
            return sum(1 for q, _ in self.ran if queue is None or q == queue)

    def order(self, queue: str) -> list[Any]:
        with self.lock:
            return [n for q, n in self.ran if q == queue]

    @staticmethod
    def _ok(job: Job) -> None:
        return None

    @staticmethod
    def _fail(job: Job) -> None:
        raise RuntimeError(f"boom {job.attempts}")

    @staticmethod
    def _fail_until(job: Job) -> None:
        if job.attempts < job.params["succeed_at"]:
            raise RuntimeError(f"not yet ({job.attempts})")

    @staticmethod
    def _sleep(job: Job) -> None:
        time.sleep(job.params["seconds"])

    def _wait(self, job: Job) -> None:
        self.started.set()
        if not self.release.wait(60):
            raise RuntimeError("never released")

    @staticmethod
    def _raise_base(job: Job) -> None:
        kinds: dict[str, Callable[[], BaseException]] = {
            "SystemExit": lambda: SystemExit(3), "KeyboardInterrupt": KeyboardInterrupt}
        raise kinds[job.params["kind"]]()
