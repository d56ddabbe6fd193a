"""A clock that only this host's processes compare, and that never jumps.

Leases on SQLite are compared by processes of one host. The wall clock can jump
(an NTP step, a VM resumed, an operator's ``date -s``): a forward jump past the
lease made a running job look abandoned, and it ran again beside itself. Linux's
``CLOCK_BOOTTIME`` does not jump (it counts suspended time too, so a lease still
ends during a suspend) and is shared by every process of one boot; the boot id
says which boot an instant belongs to. A lease taken with a host instant is then
judged by that clock by any process of the same boot, and by the wall clock
(``locked_until``, still written) by anyone else.

The key also names the time namespace: processes in different time namespaces
(a container restored by CRIU) may see different ``CLOCK_BOOTTIME`` values on
one boot. Elsewhere than Linux there is no host clock (``now()`` returns None)
and leases follow the wall clock alone.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from .backend import HostInstant
from .holders import boot_id, namespace_inode

HostClock = Callable[[], "HostInstant | None"]

_key: tuple[int, str | None] | None = None  # (pid, key): read once per process


def _read_key() -> str | None:
    if not hasattr(time, "CLOCK_BOOTTIME"):
        return None
    boot = boot_id()
    if boot is None:
        return None
    # No time namespace (a kernel before 5.6): one clock for all, "0".
    return f"{boot}.{namespace_inode('time') or '0'}"


def host_key() -> str | None:
    """This process's boot and time namespace (``<boot id>.<inode>``), or None."""
    global _key
    pid = os.getpid()
    if _key is None or _key[0] != pid:  # a fork()ed child may be in another namespace
        _key = (pid, _read_key())
    return _key[1]


def now() -> HostInstant | None:
    """This host's ``CLOCK_BOOTTIME`` reading with its key; None where there is none."""
    key = host_key()
    if key is None:
        return None
    return HostInstant(key, time.clock_gettime(time.CLOCK_BOOTTIME))


def no_host_clock() -> HostInstant | None:
    """No host clock: leases follow the wall clock alone."""
    return None


def for_wall_clock(clock: Callable[[], float]) -> HostClock:
    """The host clock that goes with a scheduler's wall ``clock``.

    With the real wall clock, this host's clock. With an injected one (a test's
    fake clock), none: leases then follow the injected clock, which tests move
    to make a lease run out.
    """
    return now if clock is time.time else no_host_clock
