"""Cron lines (UTC): parsing, the day-of-month/day-of-week OR rule, previous and next ticks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuetopia_lite import InvalidJobError
from queuetopia_lite.cron import Cron


def at(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()  # type: ignore[misc]


def iso(t: float | None) -> str:
    assert t is not None
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M %a")


NOW = at(2027, 1, 15, 10, 7, 30)  # a Friday


@pytest.mark.parametrize(("line", "previous", "following"), [
    ("* * * * *", "2027-01-15 10:07 Fri", "2027-01-15 10:08 Fri"),
    ("0 3 * * *", "2027-01-15 03:00 Fri", "2027-01-16 03:00 Sat"),
    ("*/15 * * * *", "2027-01-15 10:00 Fri", "2027-01-15 10:15 Fri"),
    ("5,7,50 10 * * *", "2027-01-15 10:07 Fri", "2027-01-15 10:50 Fri"),
    ("0-30/10 9-11 * * *", "2027-01-15 10:00 Fri", "2027-01-15 10:10 Fri"),
    ("10/20 * * * *", "2027-01-15 09:50 Fri", "2027-01-15 10:10 Fri"),
    ("0 9 * * mon-fri", "2027-01-15 09:00 Fri", "2027-01-18 09:00 Mon"),
    ("0 12 * * 0", "2027-01-10 12:00 Sun", "2027-01-17 12:00 Sun"),
    ("0 12 * * 7", "2027-01-10 12:00 Sun", "2027-01-17 12:00 Sun"),
    ("0 0 1 jan *", "2027-01-01 00:00 Fri", "2028-01-01 00:00 Sat"),
    ("0 0 1 JAN-MAR,dec *", "2027-01-01 00:00 Fri", "2027-02-01 00:00 Mon"),
    # Both day fields restricted: either matches (the 13th, or any Friday).
    ("0 0 13 * fri", "2027-01-15 00:00 Fri", "2027-01-22 00:00 Fri"),
    ("0 0 13 * mon", "2027-01-13 00:00 Wed", "2027-01-18 00:00 Mon"),
    # One day field starting with *: both must match (here: Friday the 13th).
    ("0 0 13 * *", "2027-01-13 00:00 Wed", "2027-02-13 00:00 Sat"),
    ("0 0 */2 * fri", "2027-01-15 00:00 Fri", "2027-01-29 00:00 Fri"),
    ("30 2 29 feb *", "2024-02-29 02:30 Thu", "2028-02-29 02:30 Tue"),
    ("0 0 31 * *", "2026-12-31 00:00 Thu", "2027-01-31 00:00 Sun"),
])
def test_previous_and_next_ticks(line: str, previous: str, following: str) -> None:
    cron = Cron(line)
    assert iso(cron.previous(NOW)) == previous
    assert iso(cron.next(NOW)) == following


def test_a_tick_is_its_own_previous_and_next_is_strictly_after() -> None:
    cron = Cron("0 3 * * *")
    tick = at(2027, 1, 15, 3, 0)
    assert cron.previous(tick) == tick
    assert cron.next(tick) == at(2027, 1, 16, 3, 0)
    assert cron.previous(tick - 0.001) == at(2027, 1, 14, 3, 0)


def test_a_date_that_never_comes_has_no_ticks() -> None:
    cron = Cron("0 0 30 feb *")
    assert cron.previous(NOW) is None and cron.next(NOW) is None


@pytest.mark.parametrize("line", [
    "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
    "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * foo *",
    "1,,2 * * * *", "-1 * * * *", "* * * * mon-", "1.5 * * * *",
])
def test_malformed_lines_are_refused_naming_the_schedule(line: str) -> None:
    with pytest.raises(InvalidJobError) as info:
        Cron(line)
    assert info.value.field == "schedule"


def _matches(cron: Cron, moment: datetime) -> bool:
    """A reference, minute by minute: the fields as sets, the OR rule as documented."""
    dow = (moment.weekday() + 1) % 7
    in_month, in_week = moment.day in cron.days, dow in cron.weekdays
    if cron.days_restricted and cron.weekdays_restricted:
        day = in_month or in_week
    else:
        day = in_month and in_week
    return (moment.minute in cron.minutes and moment.hour in cron.hours
            and moment.month in cron.months and day)


FIELD = st.sampled_from(["*", "*/5", "0", "30", "1-10", "0,15,45", "*/7"])
HOUR = st.sampled_from(["*", "3", "*/6", "9-17", "0,12"])
DOM = st.sampled_from(["*", "1", "15", "1-7", "*/10", "31"])
MONTH = st.sampled_from(["*", "1", "2-4", "*/3"])
DOW = st.sampled_from(["*", "0", "1-5", "sat,sun", "*/2", "fri"])


@settings(max_examples=50, deadline=None)
@given(minute=FIELD, hour=HOUR, dom=DOM, month=MONTH, dow=DOW,
       start=st.integers(min_value=0, max_value=4 * 366 * 1440))
def test_previous_and_next_agree_with_a_minute_by_minute_search(
        minute: str, hour: str, dom: str, month: str, dow: str, start: int) -> None:
    cron = Cron(f"{minute} {hour} {dom} {month} {dow}")
    t = at(2025, 1, 1) + start * 60 + 17.5
    moment = datetime.fromtimestamp(t, tz=timezone.utc).replace(second=0, microsecond=0)
    previous = cron.previous(t)
    assert previous is not None
    probe = moment
    while not _matches(cron, probe):
        probe -= timedelta(minutes=1)
    assert previous == probe.timestamp()
    following = cron.next(t)
    assert following is not None
    probe = moment + timedelta(minutes=1)
    while not _matches(cron, probe):
        probe += timedelta(minutes=1)
    assert following == probe.timestamp()
