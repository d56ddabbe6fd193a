"""Telling a lock's holder process apart: pid and start time, this host only (SPEC 13.2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from queuetopia_lite.holders import holder_alive, host_prefix, new_token, process_start

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")


def token_of(pid: int, start: int) -> str:
    return f"{host_prefix()}{pid}.{start}.0123456789abcdef"


def test_this_process_is_alive_and_its_tokens_name_it() -> None:
    start = process_start(os.getpid())
    assert start is not None
    assert new_token().startswith(f"{host_prefix()}{os.getpid()}.{start}.")
    assert holder_alive(new_token()) is True


def test_a_reused_pid_is_told_apart_by_its_start_time() -> None:
    start = process_start(os.getpid())
    assert start is not None
    assert holder_alive(token_of(os.getpid(), start + 1)) is False


def test_a_killed_process_is_gone_even_as_an_unreaped_zombie() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start(child.pid)
        assert start is not None
        token = token_of(child.pid, start)
        assert holder_alive(token) is True
        child.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
        assert holder_alive(token) is False
    finally:
        child.kill()
        child.wait()
    assert holder_alive(token) is False  # reaped: no such pid


def test_tokens_of_other_hosts_or_without_a_holder_are_not_ours_to_tell() -> None:
    other = host_prefix().replace(host_prefix().split(".")[1], "0" * 16)
    assert holder_alive(f"{other}1.1.ab") is None
    assert holder_alive("0123456789abcdef") is None  # an older version's plain token
    assert holder_alive(None) is None
    assert holder_alive(f"{host_prefix()}x.1.ab") is None
