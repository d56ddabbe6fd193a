"""The two SQLite libraries the backend runs on: apsw (the default) and Python's sqlite3.

Everything that differs between them lives here (opening, the few calls that are
not plain SQL, error codes), so the SQL files and the transactions stay shared.
Both run the same statements with the same named parameters; ``changes`` and
``last_insert_rowid`` are read through SQL functions on sqlite3 (it has no such
methods), and errors are classified by SQLite's primary result code on both.

Two copies of SQLite in one process do not see each other's POSIX locks (SQLite's
"How to corrupt" page): a file must be opened through one library only, which
``check_one_library`` enforces where this process can see it. Python's sqlite3 is
imported only when asked for (or already imported by the application): whether
it is loaded tells that check whether it has anything to look for.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator, Union

import apsw

from ..errors import InvalidJobError

if TYPE_CHECKING:
    import sqlite3

Conn = Union[apsw.Connection, "sqlite3.Connection"]
DRIVERS = ("apsw", "sqlite3")
MIN_SQLITE3 = (3, 35, 0)  # RETURNING (our statements use it)

# SQLite's primary result codes.
PERM, BUSY, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB = 3, 5, 8, 10, 11, 13, 14, 26
# Errors that waiting cannot cure: workers stop instead of retrying them forever.
_NEEDS_A_PERSON = frozenset({READONLY, NOTADB, CORRUPT, CANTOPEN, PERM})
_SENTENCES = {
    READONLY: "the database is read-only (check the permissions of the file and its folder)",
    FULL: "the disk is full: the database cannot grow",
    NOTADB: "not a database file",
    CORRUPT: "the database file is corrupt (restore it from a backup)",
    CANTOPEN: "cannot open the database file (does its folder exist, is it writable?)",
    PERM: "permission denied",
}


def _loaded_sqlite3() -> ModuleType | None:
    """Python's sqlite3 module if this process has imported it, else None."""
    return sys.modules.get("sqlite3")


def errors() -> tuple[type[BaseException], ...]:
    """The exception classes of the libraries in use (for ``except``)."""
    module = _loaded_sqlite3()
    return (apsw.Error,) if module is None else (apsw.Error, module.Error)


def check_driver(driver: object) -> str:
    """The driver name, checked (sqlite3 also needs a SQLite with RETURNING)."""
    if driver not in DRIVERS:
        raise InvalidJobError("driver", f"expected 'apsw' or 'sqlite3', got {driver!r}")
    if driver == "sqlite3":
        module = importlib.import_module("sqlite3")
        if module.sqlite_version_info < MIN_SQLITE3:
            raise InvalidJobError("driver", "driver='sqlite3' needs SQLite >= 3.35 (RETURNING); "
                                  f"this Python links SQLite {module.sqlite_version}: "
                                  "use driver='apsw' (its own SQLite)")
    return str(driver)


def connect(driver: str, path: str, busy_timeout: float, vfs: str | None) -> Conn:
    """A connection in autocommit mode (we write BEGIN IMMEDIATE ourselves)."""
    if driver == "sqlite3":
        module = importlib.import_module("sqlite3")
        # check_same_thread off: each thread has its own connection anyway, and
        # close_all() closes them from whichever thread stops the backend.
        conn: Conn = module.connect(path, timeout=busy_timeout, isolation_level=None,
                                    check_same_thread=False)
        return conn
    aconn = apsw.Connection(path, vfs=vfs)
    aconn.set_busy_timeout(int(busy_timeout * 1000))
    return aconn


def driver_of(conn: object) -> str | None:
    """Which library a connection belongs to, or None for anything else."""
    if isinstance(conn, apsw.Connection):
        return "apsw"
    module = _loaded_sqlite3()
    if module is not None and isinstance(conn, module.Connection):
        return "sqlite3"
    return None


def changes(conn: Conn) -> int:
    """Rows changed by the last statement."""
    if isinstance(conn, apsw.Connection):
        return conn.changes()
    return int(conn.execute("SELECT changes()").fetchone()[0])


def last_insert_rowid(conn: Conn) -> int:
    """The rowid of the last row inserted on this connection."""
    if isinstance(conn, apsw.Connection):
        return conn.last_insert_rowid()
    return int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])


def in_transaction(conn: Conn) -> bool:
    """Whether a transaction is open on the connection."""
    if isinstance(conn, apsw.Connection):
        return not conn.get_autocommit()
    return conn.in_transaction


def begins_implicitly(conn: Conn) -> bool:
    """Whether the connection opens a transaction by itself before a write.

    Python's sqlite3 does so in its default (legacy) mode: isolation_level not None.
    """
    if isinstance(conn, apsw.Connection):
        return False
    autocommit = getattr(conn, "autocommit", -1)  # Python 3.12+; -1: legacy control
    if autocommit is True or autocommit is False:
        return not autocommit
    return conn.isolation_level is not None


def begin_implicitly(conn: Conn) -> None:
    """Open the transaction sqlite3 would open before the application's next write."""
    assert not isinstance(conn, apsw.Connection)
    conn.execute(f"BEGIN {conn.isolation_level or ''}")


def filename(conn: Conn) -> str:
    """The path of the connection's main database ('' for a temporary or in-memory one)."""
    if isinstance(conn, apsw.Connection):
        return conn.filename
    for _seq, name, path in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path or "")
    return ""


def run_script(conn: Conn, text: str) -> None:
    """Run several statements (sqlite3's executescript would COMMIT first: not used)."""
    if isinstance(conn, apsw.Connection):
        conn.execute(text).fetchall()
        return
    statement = ""
    complete = importlib.import_module("sqlite3").complete_statement
    for line in text.splitlines(keepends=True):
        statement += line
        if complete(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        conn.execute(statement)


def backup(source: Conn, target: str) -> None:
    """Copy the source's main database to ``target`` in one step (one read snapshot)."""
    if not isinstance(source, apsw.Connection):
        dest = importlib.import_module("sqlite3").connect(target)
        try:
            source.backup(dest)  # pages=-1: every page in one step
        finally:
            dest.close()
        return
    adest = apsw.Connection(target)
    try:
        # One step copies every page under one read snapshot; in WAL mode writers
        # go on meanwhile (stepping in pieces would restart at each of their commits).
        with adest.backup("main", source, "main") as copy:
            copy.step(-1)
    finally:
        adest.close()


# -- errors ---------------------------------------------------------------------


def result_code(error: BaseException) -> int:
    """SQLite's primary result code of a driver error (0 when it carries none)."""
    code: Any = getattr(error, "result", None)  # apsw
    if code is None:
        code = getattr(error, "sqlite_errorcode", None)  # sqlite3
    return int(code) & 0xFF if isinstance(code, int) else 0


def is_busy(error: BaseException) -> bool:
    """SQLite stayed busy beyond the busy timeout (the transaction may be run again)."""
    return result_code(error) == BUSY


def needs_a_person(error: BaseException) -> bool:
    """Whether no retry can fix the error (read-only, corrupt, not a database...)."""
    return result_code(error) in _NEEDS_A_PERSON


def describe(error: BaseException) -> str | None:
    """A plain sentence for errors that no retry can fix, else None."""
    code = result_code(error)
    if code == IOERR:
        # The message is often empty here; the extended code says which call failed.
        return f"disk I/O error ({_extended_name(error)}{': ' + str(error) if str(error) else ''})"
    return _SENTENCES.get(code)


def _extended_name(error: BaseException) -> str:
    name = getattr(error, "sqlite_errorname", None)  # sqlite3
    if name:
        return str(name)
    number: int = getattr(error, "extendedresult", 0)
    return str(apsw.mapping_extended_result_codes.get(number)
               or apsw.mapping_result_codes.get(number, "SQLITE_IOERR"))


# -- one library per file ---------------------------------------------------------


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _apsw_holds(path: str) -> bool:
    """Whether an open apsw connection of this process is on ``path``."""
    for conn in apsw.connections():
        try:
            name = conn.filename
        except apsw.Error:  # closed meanwhile
            continue
        if name and _same_file(name, path):
            return True
    return False


def _descriptors(path: str) -> int:
    """How many file descriptors of this process are open on ``path`` (Linux /proc)."""
    try:
        target = os.stat(path)
        names = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    count = 0
    for name in names:
        try:
            st = os.stat(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile, or the listing's own descriptor
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            count += 1
    return count


def _libraries_mapping(path: str) -> int:
    """How many SQLite libraries of this process have ``path``'s WAL index mapped (Linux).

    Each library maps the first region of the ``-shm`` file once per database
    (its connections share that mapping), from its first read on: two mappings
    at offset 0 of that file are two libraries.
    """
    try:
        st = os.stat(path + "-shm")
        fd = os.open("/proc/self/maps", os.O_RDONLY)
    except OSError:
        return 0
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}".encode()
    inode = str(st.st_ino).encode()
    maps = b"".join(chunks)
    # Only the lines naming the file are split (a few of some hundreds): this runs at
    # every enqueue, holding the GIL.
    needle = b" " + device + b" " + inode + b" "
    count = 0
    seen = -1  # the start of the last line counted
    at = maps.find(needle)
    while at >= 0:
        start = maps.rfind(b"\n", 0, at) + 1
        end = maps.find(b"\n", at)
        parts = maps[start:len(maps) if end < 0 else end].split(None, 5)
        # address perms offset device inode path
        if (start != seen and len(parts) >= 5 and parts[4] == inode and parts[3] == device
                and int(parts[2], 16) == 0):
            count += 1
            seen = start
        at = maps.find(needle, at + 1)
    return count


def check_one_library(driver: str, path: str, *, opening: bool = False) -> None:
    """Refuse ``path`` through ``driver`` if another SQLite library of this process has it.

    With sqlite3, the other library is apsw, which lists its open connections.
    With apsw, on Linux and only if Python's sqlite3 is loaded (else there is
    nothing to find): two mappings of the file's WAL index are two libraries;
    and when ``opening`` while no apsw connection is on the file, any descriptor
    on it is another library's (when apsw connections are open, descriptors
    cannot be told apart: SQLite keeps closed connections' descriptors while
    others hold locks).
    """
    if driver == "sqlite3":
        if _apsw_holds(path):
            raise InvalidJobError("driver", f"{path}: this process already has the file open "
                                  f"through apsw; {ADVICE}")
        return
    if not sys.platform.startswith("linux") or _loaded_sqlite3() is None:
        return
    if _libraries_mapping(path) > 1 or (opening and _unlisted_descriptors(path)):
        raise InvalidJobError("driver", f"{path}: this process also has the file open "
                              f"through another SQLite library (Python's sqlite3?); {ADVICE}")


def _unlisted_descriptors(path: str) -> bool:
    """Descriptors on ``path`` while no apsw connection is on it, seen a few times over."""
    # An apsw connection being opened or closed by another thread has its descriptor
    # for a moment without being listed: a foreign library's descriptor stays.
    for look in range(CONFIRM_LOOKS):
        if _apsw_holds(path) or not _descriptors(path):
            return False
        if look < CONFIRM_LOOKS - 1:
            time.sleep(CONFIRM_PAUSE)
    return True


CONFIRM_LOOKS = 3  # looks at the descriptors before calling them another library's
CONFIRM_PAUSE = 0.01  # seconds between those looks


ADVICE = ("two SQLite libraries on one file in one process can silently lose committed "
          "data: open the Queuetopia with the driver the application uses "
          "(driver='sqlite3' for Python's sqlite3, SQLAlchemy or Django; driver='apsw' for apsw)")


@contextlib.contextmanager
def snapshot(conn: Conn) -> Iterator[Conn]:
    """One read transaction: every statement inside sees the same snapshot."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")
