"""Combining under Ctrl-C: a signal's exception in one caller never leaves the turn with
nobody (later writes would hang), is raised in the thread it was meant for, never has a
stored write reported as rolled back, and never lets two writers run at once. Real
SIGINTs where a real one can land; elsewhere sys.settrace raises at a chosen line, as a
signal handler would."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable

import pytest

from queuetopia_lite import DatabaseError, Queuetopia, combine
from queuetopia_lite.combine import Combiner, Request
from queuetopia_lite.sqlite.connection import Connections, writer_lock

from .conftest import wait_until


def write_beside_main(conns: Connections, path: str,
                      body: Callable[[Any], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Thread B writes ``body`` in the main thread's next shared transaction: the writer
    lock is held until B waits behind the main thread's lead. Returns B's thread and
    ``{"b": its result or exception}``."""
    lock = writer_lock(path)
    lock.acquire()
    results: dict[str, object] = {}

    def b() -> None:
        wait_until(lambda: conns._writes._busy, message="main leading")
        try:
            results["b"] = conns.write(body)
        except BaseException as exc:
            results["b"] = exc

    def release_when_b_waits() -> None:
        wait_until(lambda: len(conns._writes._waiting) >= 1, message="B waiting")
        lock.release()

    threading.Thread(target=release_when_b_waits, daemon=True).start()
    thread_b = threading.Thread(target=b)
    thread_b.start()
    return thread_b, results


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

    def body_b(conn: Any) -> str:
        conn.execute("INSERT INTO t VALUES ('b')")
        os.kill(os.getpid(), signal.SIGINT)  # lands in the main thread, which runs this
        for _ in range(10_000):
            pass
        return "b-ok"

    thread_b, results = write_beside_main(conns, path, body_b)
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


def test_a_ctrl_c_while_joining_the_combiner_does_not_hang_the_caller() -> None:
    """SIGINT lands while the main thread blocks in ``with self._lock`` (held briefly by
    another caller): the KeyboardInterrupt comes before the request is queued, so the
    caller raises it at once (it used to wait forever on _wake, taking its request for one
    already in a batch)."""
    c: Combiner[Request] = Combiner()
    handled = threading.Event()
    holding = threading.Event()
    finished = threading.Event()
    hung: list[bool] = []
    request = Request()

    def handler(signum: int, frame: Any) -> None:
        handled.set()
        raise KeyboardInterrupt

    def holder() -> None:
        with c._lock:
            holding.set()
            handled.wait(10)  # released once the Ctrl-C was raised in the main thread

    def watchdog() -> None:
        if not finished.wait(3):
            hung.append(True)
            request._wake.release()  # rescue the main thread

    old = signal.signal(signal.SIGINT, handler)
    try:
        threading.Thread(target=holder, daemon=True).start()
        holding.wait(10)
        threading.Thread(target=watchdog, daemon=True).start()
        timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        try:
            c.submit(request, lambda batch: None)
        except KeyboardInterrupt:
            pass
        finished.set()
    finally:
        signal.signal(signal.SIGINT, old)
    assert handled.is_set()
    assert not hung, "submit hung waiting on _wake after a Ctrl-C during `with self._lock`"


class _InterruptAfterAcquire:
    """A wake lock whose acquire() returns having acquired, then raises (a signal caught
    by the eval-breaker check right after the CALL returned)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.fired = False

    def acquire(self, *args: Any) -> bool:
        got = self.real.acquire(*args)
        if not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        return bool(got)

    def release(self) -> None:
        self.real.release()


def test_an_interrupt_just_after_a_done_request_is_woken_does_not_hang() -> None:
    """The interrupt lands just as the wake of a request already done returns: the caller
    raises it at once instead of waiting for a second wake."""
    c: Combiner[Request] = Combiner()
    leader_in_write = threading.Event()
    go = threading.Event()
    waiter = Request()
    wrapper = _InterruptAfterAcquire(waiter._wake)
    waiter._wake = wrapper  # type: ignore[assignment]
    outcome: list[str] = []

    def write(batch: list[Request]) -> None:
        leader_in_write.set()
        go.wait(10)
        batch += c.take_waiting()
        for r in batch:
            r.done = True

    def waiter_thread() -> None:
        leader_in_write.wait(10)
        try:
            c.submit(waiter, lambda b: None)
            outcome.append("returned")
        except KeyboardInterrupt:
            outcome.append("interrupted")

    leader = threading.Thread(target=lambda: c.submit(Request(), write), daemon=True)
    leader.start()
    t = threading.Thread(target=waiter_thread, daemon=True)
    t.start()
    wait_until(lambda: waiter in c._waiting, message="waiter queued")
    go.set()
    leader.join(10)
    t.join(3)
    alive = t.is_alive()
    if alive:
        wrapper.real.release()  # rescue
        t.join(3)
    assert wrapper.fired
    assert not alive, "the woken (done) request's caller hangs waiting on _wake again"


@pytest.mark.parametrize("where", ["after-commit", "settling-loop"])
def test_an_interrupt_after_the_commit_reports_the_writes_as_stored(
        tmp_path: Path, where: str) -> None:
    """Ctrl-C raised right after COMMIT returned (e.g. sent during its fsync), or while the
    written batch is being marked done: B's write is stored, and B is told so (an error
    saying "rolled back, retry" would have it written twice)."""
    path = os.fspath(tmp_path / "jobs.db")
    q = Queuetopia(path, durability="normal")
    conns: Connections = q.backend._conns  # type: ignore[attr-defined]
    conns.write(lambda conn: conn.execute("CREATE TABLE t (x)"))
    code = Connections._write_batch.__code__
    lines = open(sys.modules[Connections.__module__].__file__).read().splitlines()
    if where == "after-commit":
        mark_line = next(i + 1 for i, line in enumerate(lines) if 'conn.execute("COMMIT")' in line)
    else:  # the loop marking a written batch done (combine.settle_done, run quietly)
        code = next(c for c in combine.settle_done.__code__.co_consts
                    if getattr(c, "co_name", "") == "mark")
        lines = open(combine.__file__).read().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("def settle_done"))
        mark_line = next(i + 1 for i, line in enumerate(lines)
                         if i > start and "request.done = True" in line)
    state = {"armed": False, "fired": False, "seen": 0}

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and not state["fired"]:
            if state["armed"]:
                state["fired"] = True
                raise KeyboardInterrupt  # the first line after COMMIT returned
            if frame.f_lineno == mark_line:
                state["seen"] += 1
                if where == "after-commit":
                    state["armed"] = True
                elif state["seen"] == 1:  # settling loop: main's request done, B's not yet
                    pass
                else:
                    state["fired"] = True
                    raise KeyboardInterrupt
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    thread_b, results = write_beside_main(
        conns, path, lambda conn: conn.execute("INSERT INTO t VALUES ('b')"))
    sys.settrace(tracer)
    try:
        conns.write(lambda conn: conn.execute("INSERT INTO t VALUES ('main')"))
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    thread_b.join(10)
    assert state["fired"]
    stored = conns.read(lambda conn: conn.execute("SELECT x FROM t ORDER BY x").fetchall())
    assert stored == [("b",), ("main",)]  # committed
    err = results["b"]
    assert not isinstance(err, BaseException), f"B's write is stored, yet B got {err!r}"
    q.close()


def test_a_leader_interrupted_while_settling_never_makes_a_second_writer() -> None:
    """A second Ctrl-C lands in submit's loop settling a batch (after write() raised a
    first one without settling all): the requests left unsettled get an error before they
    are woken, so none takes itself for the next writer beside the one handed the turn."""
    c: Combiner[Request] = Combiner()
    code = Combiner.submit.__code__
    lines = open(combine.__file__).read().splitlines()
    target = next(i + 1 for i, line in enumerate(lines)
                  if "unsettled.error = (exc if isinstance(exc, Exception)" in line)
    fired: list[int] = []
    writing = 0
    max_writing = 0
    guard = threading.Lock()
    go = threading.Event()
    release_writers = threading.Event()
    first = threading.Event()
    a, b, f = Request(), Request(), Request()

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == target and not fired:
            fired.append(1)
            raise KeyboardInterrupt  # second signal: before any request is settled
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    def leader_write(batch: list[Request]) -> None:
        go.wait(10)
        batch += c.take_waiting()  # A and B join
        raise KeyboardInterrupt  # first signal, before anything was settled

    def other_write(batch: list[Request]) -> None:
        nonlocal writing, max_writing
        with guard:
            writing += 1
            max_writing = max(max_writing, writing)
        first.set()
        release_writers.wait(2)
        with guard:
            writing -= 1
        for r in batch:
            r.done = True

    def leader() -> None:
        sys.settrace(tracer)
        try:
            c.submit(Request(), leader_write)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)

    lt = threading.Thread(target=leader, daemon=True)
    lt.start()
    wait_until(lambda: c._busy, message="leader")
    ts = [threading.Thread(target=c.submit, args=(r, other_write), daemon=True)
          for r in (a, b)]
    for t in ts:
        t.start()
    wait_until(lambda: len(c._waiting) == 2, message="A, B waiting")
    # F arrives after A and B were taken, gets the turn at the end of the leader's turn
    orig = c.take_waiting

    def take_then_f() -> list[Request]:
        got = orig()
        threading.Thread(target=c.submit, args=(f, other_write), daemon=True).start()
        wait_until(lambda: f in c._waiting, message="F waiting")
        return got

    c.take_waiting = take_then_f  # type: ignore[method-assign]
    go.set()
    lt.join(10)
    first.wait(5)
    wait_until(lambda: max_writing >= 2 or (a.done and b.done and f.done), timeout=2,
               message="writers")
    release_writers.set()
    assert fired
    assert max_writing <= 1, f"{max_writing} writers ran at once"
