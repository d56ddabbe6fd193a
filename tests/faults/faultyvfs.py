"""An apsw VFS shim that fails the Nth write, sync or read (SQLite's own I/O-error method).

The shim inherits every method from the default VFS and only counts calls of
xWrite, xSync and xRead on every file SQLite opens through it (database, WAL,
journal). When armed, the call numbered ``at`` of ``kind`` raises the SQLite
error ``code`` (SQLITE_IOERR by default, SQLITE_FULL for a full disk); with
``persistent`` every later call of that kind fails too (a disk that stays full).
"""

from __future__ import annotations

import threading
from typing import Any

import apsw

NAME = "qt-faulty"


class Plan:
    """What to fail next; shared by every file the shim opens in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = {"write": 0, "sync": 0, "read": 0}
        self.kind: str | None = None
        self.at = 0
        self.code = apsw.SQLITE_IOERR
        self.persistent = False
        self.fired = 0

    def arm(self, kind: str, at: int, code: int = apsw.SQLITE_IOERR,
            persistent: bool = False) -> None:
        """Fail call number ``at`` (1-based, counted from now) of ``kind``."""
        with self.lock:
            self.counts = dict.fromkeys(self.counts, 0)
            self.kind, self.at, self.code, self.persistent = kind, at, code, persistent
            self.fired = 0

    def disarm(self) -> None:
        """Let every call through again."""
        with self.lock:
            self.kind = None

    def hit(self, kind: str) -> None:
        """Count a call; raise if it is the one to fail."""
        with self.lock:
            self.counts[kind] += 1
            if kind != self.kind:
                return
            n = self.counts[kind]
            if n == self.at or (self.persistent and n > self.at):
                self.fired += 1
                raise apsw.exception_for(self.code)


PLAN = Plan()


class FaultyFile(apsw.VFSFile):
    """A file of the default VFS whose writes, syncs and reads may fail on demand."""

    def xWrite(self, data: Any, offset: int) -> None:
        PLAN.hit("write")
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        PLAN.hit("sync")
        super().xSync(flags)

    def xRead(self, amount: int, offset: int) -> bytes:
        PLAN.hit("read")
        return super().xRead(amount, offset)  # type: ignore[no-any-return]


class FaultyVFS(apsw.VFS):
    """The default VFS with FaultyFile files, registered as NAME."""

    def __init__(self) -> None:
        super().__init__(NAME, "")

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        return FaultyFile("", name, flags)


_registered: FaultyVFS | None = None


def register() -> str:
    """Register the shim once in this process; return its VFS name."""
    global _registered
    if _registered is None:
        _registered = FaultyVFS()
    return NAME
