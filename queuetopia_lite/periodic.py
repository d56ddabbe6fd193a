"""Periodic jobs: schedules, and the ticker that creates one job per tick.

However many processes tick one database, a tick makes one job: the backend
advances the definition's ``last_tick`` with a compare-and-set in the same
transaction as the job's insert (``Backend.create_periodic_job``). A process
that sees a definition for the first time records its latest tick without a job
(the schedule starts now); after a pause, only the latest missed tick makes a job.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence, Union

from . import validation as check
from .backend import Backend, NewJob, PeriodicTick
from .cron import Cron
from .errors import InvalidJobError
from .job import Job

log = logging.getLogger("queuetopia_lite")

MIN_INTERVAL = 1.0  # seconds: shorter intervals would keep a database busy with ticks
MAX_SLEEP = 60.0  # seconds between looks at the schedules, at most
ERROR_PAUSE = 5.0  # seconds before trying again after a database error
TICK_MARGIN = 0.005  # seconds slept past a tick, so that the clock has surely reached it


class Interval:
    """Ticks every ``seconds``, at multiples of it since the epoch (the same in every process)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def previous(self, t: float) -> float | None:
        """The latest tick at or before ``t``."""
        return math.floor(t / self.seconds) * self.seconds

    def next(self, t: float) -> float | None:
        """The earliest tick after ``t``."""
        return (math.floor(t / self.seconds) + 1) * self.seconds


Schedule = Union[Cron, Interval]


def schedule_of(value: object) -> Schedule:
    """A cron line (str, UTC) or an interval (seconds or a timedelta) as a Schedule."""
    if isinstance(value, str):
        return Cron(value)
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        seconds = check.duration("schedule", value)
        if seconds < MIN_INTERVAL:
            raise InvalidJobError("schedule", f"an interval of at least {MIN_INTERVAL:g} s, "
                                  f"got {value!r}")
        return Interval(seconds)
    raise InvalidJobError("schedule", f"expected a cron line or seconds, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Periodic:
    """A periodic definition: its name (unique in a scope), schedule and job template."""

    name: str
    schedule: Schedule
    job: NewJob

    def job_for(self, tick: float) -> NewJob:
        """The job of one tick; its unique key names the definition and the tick."""
        when = datetime.fromtimestamp(tick, tz=timezone.utc).isoformat()
        return dataclasses.replace(self.job, unique_key=f"periodic:{self.name}@{when}")


def define(name: object, schedule: object, queue: object, action: object, params: object,
           defaults: check.DefaultsFor = check.no_defaults) -> Periodic:
    """Check a periodic definition's arguments (InvalidJobError names a bad one)."""
    return Periodic(check.name("name", name), schedule_of(schedule),
                    check.new_job(queue, action, params, defaults=defaults))


class PeriodicTicker:
    """Creates the jobs of due ticks, in a thread of its own (start/stop) or on demand (tick).

    Args:
        backend: the database.
        scope: the Queuetopia's scope.
        definitions: the periodic definitions (read at every tick).
        clock: the wall clock, epoch seconds.
        on_created: called with the jobs a tick created (to wake the scheduler).
    """

    def __init__(self, backend: Backend, scope: str, definitions: Sequence[Periodic],
                 clock: Callable[[], float], on_created: Callable[[list[Job]], Any]) -> None:
        self._backend = backend
        self._scope = scope
        self._definitions = definitions
        self._clock = clock
        self._on_created = on_created
        self._seen: dict[str, float] = {}  # the last tick this process handled, by name
        self._lock = threading.Lock()  # one tick at a time (thread and drain)
        self._wake = threading.Event()  # a stop, or a new definition
        self._stopping = False
        self._thread: threading.Thread | None = None

    def tick(self) -> list[Job]:
        """Create the jobs of the ticks due now that no process has created yet."""
        with self._lock:
            now = self._clock()
            due: list[PeriodicTick] = []
            for periodic in self._definitions:
                tick = periodic.schedule.previous(now)
                if tick is not None and self._seen.get(periodic.name, -math.inf) < tick:
                    due.append((periodic.name, tick, periodic.job_for(tick)))
            # Every due tick in one transaction: 100 definitions cost one commit a tick.
            created = self._backend.create_periodic_jobs(self._scope, due, now) if due else []
            for name, tick, _job in due:
                self._seen[name] = tick
        if created:
            self._on_created(created)
        return created

    def next_tick(self) -> float | None:
        """The earliest tick to come of any definition."""
        now = self._clock()
        ticks = [t for t in (p.schedule.next(now) for p in self._definitions) if t is not None]
        return min(ticks) if ticks else None

    def start(self) -> None:
        """Tick in a background thread until stop(); a running one looks again at once
        (a definition was added). No thread without definitions."""
        if self._thread is not None:
            self._wake.set()
            return
        if not self._definitions:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="queuetopia-periodic",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread (a tick in progress completes)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join(timeout)

    def _run(self) -> None:
        pause = 0.0
        while True:
            self._wake.wait(pause)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.tick()
            except Exception:  # the database may come back: never stop ticking for good
                log.exception("queuetopia_lite: periodic jobs could not be created; "
                              "trying again in %.0f s", ERROR_PAUSE)
                pause = ERROR_PAUSE
                continue
            upcoming = self.next_tick()
            pause = MAX_SLEEP if upcoming is None else min(
                max(upcoming - self._clock(), 0.0) + TICK_MARGIN, MAX_SLEEP)
