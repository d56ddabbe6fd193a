"""The database's clock as seen from this host: lease times come from it.

Every backend method takes ``now`` from its caller (the host's clock, or a test's
fake clock). Leases must not depend on hosts agreeing about the time: a host
whose clock runs a minute ahead would otherwise take over every lease a minute
early. So the backend shifts every instant it receives by this host's measured
offset to the database clock (``clock_timestamp()``), and shifts the instants it
hands back to the scheduler (``next_due``) the other way. Stored times, lease
ends included, are then on the database's clock, and every worker compares them
with its own ``now`` mapped to that clock.

The offset is measured against the real host clock (``time.time()``), never the
``now`` a caller passes, so a fake clock in tests moves the database's view of
time exactly as much as it moves its own: tests keep full control of time.
Offsets within ``tolerance`` (default 1 s: a lease is tens of seconds) count as
zero, so hosts with a synchronised clock store exactly the instants they pass.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

CLOCK_CHECK = 10.0  # seconds between measurements of the offset
CLOCK_TOLERANCE = 1.0  # seconds of offset ignored


class DatabaseClock:
    """This host's offset to the database clock, measured now and then.

    Args:
        measure: returns the database clock's epoch seconds (one round trip).
        tolerance: offsets up to this many seconds are taken as 0.
        host_clock: the host's real clock (tests simulate a skewed host with it).
    """

    def __init__(self, measure: Callable[[], float], tolerance: float = CLOCK_TOLERANCE,
                 host_clock: Callable[[], float] = time.time) -> None:
        self._measure = measure
        self._host_clock = host_clock
        self._tolerance = tolerance
        self._offset = 0.0
        self._checked_at = -float("inf")  # time.monotonic()
        self._lock = threading.Lock()

    def offset(self) -> float:
        """Seconds to add to a host instant to get the database's instant."""
        if time.monotonic() - self._checked_at >= CLOCK_CHECK and self._lock.acquire(False):
            try:
                self._update()
            except Exception:  # unreachable now: keep the last offset, measure again later
                self._checked_at = time.monotonic()
            finally:
                self._lock.release()
        return self._offset

    def _update(self) -> None:
        before = self._host_clock()
        database = self._measure()
        after = self._host_clock()
        skew = database - (before + after) / 2  # the round trip's midpoint
        self._offset = skew if abs(skew) > self._tolerance else 0.0
        self._checked_at = time.monotonic()
