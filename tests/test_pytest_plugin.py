"""The pytest plugin, as a user gets it: installed, found through the ``pytest11`` entry point.

pytest runs in a subprocess on a sample test file in a folder of its own (no
conftest.py, no ``-p``), so the fixtures can only come from the entry point.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from .test_readme import python_block_after

SAMPLE = '''
from datetime import timedelta

import pytest

from queuetopia_lite import Performer, Queuetopia
from queuetopia_lite.errors import UnknownActionError
from queuetopia_lite.testing import FakeClock, assert_job_created

performer = Performer()


@performer.action("charge")
def charge(job):
    if job.params["card"] == "expired":
        raise RuntimeError("card expired")
    return f"charged order {job.params['order']}"


def test_db_is_a_fresh_path_in_tmp_path(queuetopia_db, tmp_path):
    assert queuetopia_db.startswith(str(tmp_path))
    q = Queuetopia(queuetopia_db, durability="normal")
    assert q.list_jobs() == []
    q.close()


def test_clock_drives_the_queue(queuetopia_db, queuetopia_clock):
    assert isinstance(queuetopia_clock, FakeClock)
    ran = []
    q = Queuetopia(queuetopia_db, lambda job: ran.append(job.id), clock=queuetopia_clock,
                   durability="normal")
    job = q.create_job("mails", "send", scheduled_at=queuetopia_clock.instant
                       + timedelta(seconds=30))
    assert q.drain() == 0
    queuetopia_clock.advance(30)
    assert q.drain() == 1 and ran == [job.id]
    q.close()


def test_perform_job_returns_and_raises(perform_job):
    assert perform_job(performer, "charge", {"order": 7, "card": "ok"}) == "charged order 7"
    with pytest.raises(RuntimeError, match="card expired"):
        perform_job(performer, "charge", {"order": 8, "card": "expired"})
    with pytest.raises(UnknownActionError):
        perform_job(performer, "refund")


def test_failing_on_purpose(queuetopia_db):
    q = Queuetopia(queuetopia_db, durability="normal")
    q.create_job("mails", "send_mail", {"to": "ada@example.com"})
    assert_job_created(q, queue="mails", action="send_sms")
'''


def test_the_entry_point_names_the_plugin() -> None:
    points = metadata.entry_points(group="pytest11")
    assert [p.value for p in points if p.name == "queuetopia_lite"] == [
        "queuetopia_lite.pytest_plugin"]


def run_pytest(folder: Path, source: str) -> str:
    """Run pytest on ``source`` as the only test file of ``folder``; its output."""
    (folder / "test_sample.py").write_text(textwrap.dedent(source), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sample.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def test_the_readme_example_passes(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, python_block_after("## For test authors"))
    assert "2 passed" in out and "failed" not in out, out


def test_a_test_suite_gets_every_fixture_through_the_entry_point(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, SAMPLE)
    assert "1 failed, 3 passed" in out, out
    assert "testing.py" not in out  # the helpers hide their own frames
    # The deliberate failure says which jobs do exist.
    assert ("AssertionError: Expected 1 job with action='send_sms' in queue 'mails', got 0; "
            'jobs in queue \'mails\': #1 send_mail {"to": "ada@example.com"} (available)') in out
