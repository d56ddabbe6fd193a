"""The dashboard's rendering helpers: the chart's scale, error previews, relative times."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import datetime, timezone
from pathlib import Path

from queuetopia_lite import Queuetopia
from queuetopia_lite.backend import Activity
from queuetopia_lite.dashboard.chart import activity_svg
from queuetopia_lite.dashboard.views import _queue_row, first_line, when

NOW = 1_800_000_000.0


def test_the_chart_scales_to_a_round_top_and_draws_one_bar_per_count() -> None:
    activity = Activity(since=NOW - 3600, bucket=60.0, done=[0] * 59 + [137],
                        failed=[1] + [0] * 59)
    svg = activity_svg(activity)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert ">200</text>" in svg  # 137 rounds up to 200
    assert len(re.findall(r'fill="#2e7d32"/>', svg)) == 1
    assert len(re.findall(r'fill="#c62828"/>', svg)) == 1
    assert "137 done" in svg and "1 failed" in svg and "-60 min" in svg


def test_an_empty_hour_is_an_empty_chart() -> None:
    svg = activity_svg(Activity(since=NOW - 3600, bucket=60.0, done=[0] * 60, failed=[0] * 60))
    assert ">1</text>" in svg and "0 done" in svg
    assert 'fill="#2e7d32"/>' not in svg


def test_first_line_takes_the_exception_of_a_traceback() -> None:
    assert first_line(None) == ""
    assert first_line("ValueError: bad\nTraceback ...\n  File x\nValueError: bad") == \
        "ValueError: bad"
    assert first_line("Traceback (most recent call last):\n  File x\nKeyError: 'k'\n") == \
        "KeyError: 'k'"
    assert first_line("x" * 500).endswith("…") and len(first_line("x" * 500)) == 160


def test_when_is_relative_with_the_exact_time_on_hover() -> None:
    at = datetime.fromtimestamp(NOW - 90, timezone.utc)
    assert ">2 min ago</time>" in when(at, NOW)
    assert 'title="2027-01-15T07:58:30+00:00"' in when(at, NOW)
    assert ">in 3 h</time>" in when(datetime.fromtimestamp(NOW + 3 * 3600, timezone.utc), NOW)
    assert ">now</time>" in when(datetime.fromtimestamp(NOW, timezone.utc), NOW)
    assert "-" in when(None, NOW)


def test_a_lock_whose_process_is_gone_says_holder_gone(tmp_path: Path) -> None:
    q = Queuetopia(tmp_path / "jobs.db")
    q.create_job("payments", "charge")
    q.backend.step(q.scope, time.time(), claim=1, owner="vm:10726")
    (status,) = q.queues()
    assert status.holder_alive is True  # this very process holds it
    row = _queue_row(dataclasses.replace(status, holder_alive=False), time.time())
    assert "vm:10726 (holder gone)" in row
    assert "(holder gone)" not in _queue_row(status, time.time())
    q.close()
