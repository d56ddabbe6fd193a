"""Who holds a queue's lock, and whether that process still exists (SPEC 13.2).

A claim's token starts with its holder: ``h1.<boot>.<pidns>.<pid>.<start>.<random>``,
where ``boot`` is this boot's id (a reboot never matches), ``pidns`` the inode of
the process's pid namespace (containers on one kernel share the boot id, not their
pids), ``pid`` and ``start`` the process and its start time in clock ticks since
boot (a reused pid has another start time). A process of the same boot and pid
namespace can tell for sure that such a holder is gone; nobody else can, and they
wait for the lease. Elsewhere than Linux (no /proc) tokens are plain random hex and
no holder is ever taken for gone.

The holder lives in the token rather than in a column of its own: tokens are made
in Python by both backends, so no statement of a scheduling step changes, and the
token travels wherever the lock is read (queue rows, Claim values).
"""

from __future__ import annotations

import os
import secrets

TOKEN_VERSION = "h1"
_PROC = "/proc"

# (pid, "h1.<boot>.<pidns>.<pid>.<start>" or ""): computed once per process (again after fork)
_this: tuple[int, str] = (0, "")


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot); None if it is gone.

    A zombie (killed, not yet reaped by its parent) counts as gone: it will never
    renew a lease again.
    """
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as stat:
            text = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = text[text.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    return int(fields[19])  # field 22 of stat(5), counted from state (field 3)


def boot_id() -> str | None:
    """This boot's id (hex, no dashes), or None where /proc cannot tell."""
    try:
        with open(f"{_PROC}/sys/kernel/random/boot_id") as boot:
            found = boot.read().strip().replace("-", "")
    except OSError:
        return None
    return found if found.isalnum() else None


def namespace_inode(kind: str) -> str | None:
    """The inode of this process's ``kind`` namespace ("pid", "time"), or None."""
    try:
        link = os.readlink(f"{_PROC}/self/ns/{kind}")  # "pid:[4026531836]"
    except OSError:
        return None
    inode = link[link.find("[") + 1:link.rfind("]")]
    return inode if inode.isdigit() else None


def _host_part() -> str | None:
    """``<boot>.<pidns>`` of this process, or None where /proc cannot tell."""
    boot, inode = boot_id(), namespace_inode("pid")
    if boot is None or inode is None:
        return None
    return f"{boot[:16]}.{inode}"


def this_holder() -> str:
    """This process as a holder (``h1.boot.pidns.pid.start``); "" where it cannot be told."""
    global _this
    pid = os.getpid()
    if _this[0] != pid:
        host, start = _host_part(), process_start(pid)
        holder = "" if host is None or start is None else f"{TOKEN_VERSION}.{host}.{pid}.{start}"
        _this = (pid, holder)
    return _this[1]


def new_token() -> str:
    """A fresh claim token naming this process as its holder (when it can be told)."""
    holder = this_holder()
    random_part = secrets.token_hex(8)
    return f"{holder}.{random_part}" if holder else random_part


def host_prefix() -> str:
    """The start every token of this host's processes shares ("" where none can be told)."""
    holder = this_holder()
    return holder[:holder.rfind(".", 0, holder.rfind(".")) + 1] if holder else ""


def holder_alive(token: str | None) -> bool | None:
    """Whether the process that made ``token`` still exists.

    None when this process cannot tell: a token of another host (or boot, or pid
    namespace), or one without a holder. False only for a holder of this host that
    is gone (no such pid, a zombie, or a pid reused by a later process).
    """
    prefix = host_prefix()
    if not token or not prefix or not token.startswith(prefix):
        return None
    parts = token[len(prefix):].split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    pid = int(parts[0])
    start = process_start(pid)
    if start is None and _hidden(pid):
        return None  # /proc hides it (hidepid): it may be the holder, it may not
    return start == int(parts[1])


def _hidden(pid: int) -> bool:
    """Whether a process exists that /proc does not show us (another user's, with hidepid)."""
    if os.path.exists(f"{_PROC}/{pid}"):
        return False  # shown: a zombie, or gone between two reads
    try:
        os.kill(pid, 0)  # signal 0: a check that the process exists, nothing is sent
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, another user's
        return True
    return True
