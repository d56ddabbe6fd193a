"""Five-field cron lines (minute hour day-of-month month day-of-week), in UTC.

Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n`` or
``a/n``, or a comma-separated list of those; months and days of the week may be
named (``jan``-``dec``, ``sun``-``sat``; day 0 and 7 are both Sunday). As in
Vixie cron, when both day fields are restricted (neither starts with ``*``), a day
matches if either matches; otherwise both must.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta, timezone

from .errors import InvalidJobError

_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_abbr) if name}
_DAYS = {name.lower(): (n + 1) % 7 for n, name in enumerate(calendar.day_abbr)}  # sun = 0
# (name, lowest, highest, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
SEARCH_DAYS = 366 * 8  # a day that matches comes within 8 years (Feb 29 on a weekday)


class Cron:
    """A parsed cron line; ``previous(t)`` and ``next(t)`` give its ticks as epoch seconds.

    Raises:
        InvalidJobError("schedule"): a malformed line (the message says which field).
    """

    def __init__(self, line: str) -> None:
        parts = line.split()
        if len(parts) != 5:
            raise InvalidJobError("schedule", f"expected 5 cron fields (minute hour "
                                  f"day-of-month month day-of-week), got {line!r}")
        self.line = line
        sets = [_field(text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
        minutes, hours, self.days, self.months, weekdays = sets
        self.minutes, self.hours = sorted(minutes), sorted(hours)
        self.weekdays = {d % 7 for d in weekdays}
        self.days_restricted = not parts[2].startswith("*")
        self.weekdays_restricted = not parts[4].startswith("*")

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def previous(self, t: float) -> float | None:
        """The latest tick at or before ``t`` (None if none within the search window)."""
        end = _minute(t)
        day = end.replace(hour=0, minute=0)
        last_hour, last_minute = end.hour, end.minute  # on the first day; then the whole day
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                for hour in reversed(self.hours[:bisect_right(self.hours, last_hour)]):
                    limit = last_minute if hour == last_hour else 59
                    i = bisect_right(self.minutes, limit)
                    if i:
                        return day.replace(hour=hour, minute=self.minutes[i - 1]).timestamp()
            day -= timedelta(days=1)
            last_hour, last_minute = 23, 59
        return None

    def next(self, t: float) -> float | None:
        """The earliest tick after ``t`` (None if none within the search window)."""
        first = _minute(t) + timedelta(minutes=1)
        day = first.replace(hour=0, minute=0)
        first_hour, first_minute = first.hour, first.minute  # on the first day only
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                for hour in self.hours[bisect_left(self.hours, first_hour):]:
                    i = bisect_left(self.minutes, first_minute if hour == first_hour else 0)
                    if i < len(self.minutes):
                        return day.replace(hour=hour, minute=self.minutes[i]).timestamp()
            day += timedelta(days=1)
            first_hour, first_minute = 0, 0
        return None


def _minute(t: float) -> datetime:
    """The UTC minute ``t`` falls in."""
    return datetime.fromtimestamp(t, tz=timezone.utc).replace(second=0, microsecond=0)


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The values a field's text selects."""
    values: set[int] = set()
    for part in text.lower().split(","):
        rng, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if rng == "*":
                first, last = low, high
            else:
                a, dash, b = rng.partition("-")
                first = _value(a, names)
                last = _value(b, names) if dash else (high if step_text else first)
        except ValueError:
            raise InvalidJobError("schedule", f"{name}: cannot read {part!r}") from None
        if step < 1 or not low <= first <= last <= high:
            raise InvalidJobError("schedule", f"{name}: {part!r} is outside {low}-{high} "
                                  "(or its range or step is empty)")
        values.update(range(first, last + 1, step))
    return values


def _value(text: str, names: dict[str, int]) -> int:
    """A number, or a month or weekday name."""
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(text)
    return int(text)
