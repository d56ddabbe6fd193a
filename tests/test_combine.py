"""Combining under Ctrl-C: a signal's exception in one caller never leaves the turn with
nobody (later writes would hang) and is raised in the thread it was meant for."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from queuetopia_lite import DatabaseError, Queuetopia, combine
from queuetopia_lite.sqlite.connection import writer_lock

from .conftest import wait_until


def test_ctrl_c_while_a_creator_waits_its_turn_leaves_later_creates_working(
        tmp_path: Path) -> None:
    path = os.fspath(tmp_path / "jobs.db")
    q = Queuetopia(path, durability="normal")
    q.create_job("warm", "noop")
    lock = writer_lock(path)
    lock.acquire()  # holds thread A's batch inside its write
    a_done = threading.Event()
    threading.Thread(target=lambda: (q.create_job("a", "noop"), a_done.set()),
                     daemon=True).start()
    wait_until(lambda: q._enqueuer._combiner._busy, message="A writing")
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            q.create_job("main", "noop")  # waits behind A; the Ctrl-C arrives meanwhile
    finally:
        lock.release()
    assert a_done.wait(10)
    later = threading.Event()
    threading.Thread(target=lambda: (q.create_job("b", "noop"), later.set()),
                     daemon=True).start()
    assert later.wait(10), "a create_job after the Ctrl-C hangs"
    assert sorted(j.queue for j in q.list_jobs()) == ["a", "b", "warm"]  # main's: not stored
    q.close()


def test_ctrl_c_in_a_thread_running_others_writes_is_raised_there_only(tmp_path: Path) -> None:
    """The main thread leads a shared transaction; the Ctrl-C lands while it runs thread
    B's body: the main thread raises it, B gets a retryable error, nothing is stored."""
    path = os.fspath(tmp_path / "jobs.db")
    q = Queuetopia(path, durability="normal")
    conns = q.backend._conns  # type: ignore[attr-defined]
    conns.write(lambda conn: conn.execute("CREATE TABLE t (x)"))
    lock = writer_lock(path)
    lock.acquire()
    results: dict[str, object] = {}

    def body_b(conn: Any) -> str:
        conn.execute("INSERT INTO t VALUES ('b')")
        os.kill(os.getpid(), signal.SIGINT)  # lands in the main thread, which runs this
        for _ in range(10_000):
            pass
        return "b-ok"

    def b() -> None:
        wait_until(lambda: conns._writes._busy, message="main leading")
        try:
            results["b"] = conns.write(body_b)
        except BaseException as exc:
            results["b"] = exc

    def release_when_b_waits() -> None:
        wait_until(lambda: len(conns._writes._waiting) >= 1, message="B waiting")
        lock.release()

    threading.Thread(target=release_when_b_waits, daemon=True).start()
    thread_b = threading.Thread(target=b)
    thread_b.start()
    with pytest.raises(KeyboardInterrupt):
        conns.write(lambda conn: conn.execute("INSERT INTO t VALUES ('main')"))
    thread_b.join(10)
    assert isinstance(results["b"], DatabaseError)
    assert results["b"].retryable  # type: ignore[attr-defined]
    assert conns.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchall()) == [(0,)]
    assert conns.write(lambda conn: 1) == 1  # the next write goes through
    q.close()


def test_ctrl_c_while_a_writer_passes_its_turn_on(tmp_path: Path) -> None:
    """The Ctrl-C lands in the end of a writer's turn (simulated with a trace function at
    that line): the callers of its batch and the next writer are still woken."""
    path = os.fspath(tmp_path / "jobs.db")
    q = Queuetopia(path, durability="normal")
    conns = q.backend._conns  # type: ignore[attr-defined]
    code = combine.Combiner._end_turn.__code__
    lines = open(combine.__file__).read().splitlines()
    target = next(i + 1 for i, line in enumerate(lines)
                  if "self._ended = time.monotonic()" in line)
    fired: list[int] = []

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == target and not fired:
            fired.append(1)
            raise KeyboardInterrupt
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    lock = writer_lock(path)
    lock.acquire()
    b_done = threading.Event()

    def b() -> None:
        wait_until(lambda: conns._writes._busy, message="main leading")
        conns.write(lambda conn: 1)
        b_done.set()

    def main_body(conn: Any) -> int:
        wait_until(lambda: len(conns._writes._waiting) >= 1, message="B waiting")
        return 1

    threading.Thread(target=b, daemon=True).start()
    threading.Thread(target=lambda: (wait_until(lambda: conns._writes._busy,
                                                message="main leading"), lock.release()),
                     daemon=True).start()
    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            conns.write(main_body)
    finally:
        sys.settrace(None)
    assert fired, "the trace never reached the end of the turn: the test tested nothing"
    assert b_done.wait(10), "a caller of the interrupted writer's batch hangs"
    later = threading.Event()
    threading.Thread(target=lambda: (conns.write(lambda c: 1), later.set()), daemon=True).start()
    assert later.wait(10), "a later write hangs"
    q.close()
