"""The CLI's human output: relative times, cells, tables within 100 columns."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from queuetopia_lite.cli.render import ago, clean, first_line, fit, span, table, width

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (3, "3 s"), (3.4, "3 s"), (59.4, "59 s"), (60, "1 min"), (119, "1 min"),
    (3599, "59 min"), (3600, "1 h"), (3900, "1 h 5 min"), (86399, "23 h 59 min"),
    (86400, "1 d"), (2 * 86400 + 3 * 3600, "2 d 3 h"), (12 * 86400 + 3 * 3600, "12 d"),
    (-90, "1 min"),
])
def test_span(seconds: float, text: str) -> None:
    assert span(seconds) == text


@pytest.mark.parametrize(("offset", "text"), [
    (3, "in 3 s"), (-120, "2 min ago"), (0.2, "now"), (-0.4, "now"), (7200, "in 2 h"),
])
def test_ago(offset: float, text: str) -> None:
    assert ago(NOW + timedelta(seconds=offset), NOW) == text


def test_ago_of_nothing() -> None:
    assert ago(None, NOW) == "-"


def test_clean_keeps_one_line() -> None:
    assert clean("a\nb\tc\x1bd") == "a b c d"


def test_width_counts_wide_characters_twice() -> None:
    assert width("abc") == 3
    assert width("日本") == 4


@pytest.mark.parametrize(("text", "size", "expected"), [
    ("short", 10, "short"), ("exactly10!", 10, "exactly10!"), ("much too long", 8, "much ..."),
    ("日本語のキュー", 7, "日本..."), ("abc", 2, ".."),
])
def test_fit(text: str, size: int, expected: str) -> None:
    assert fit(text, size) == expected
    assert width(fit(text, size)) <= size


def test_first_line_skips_blank_lines() -> None:
    assert first_line("\n  RuntimeError: x  \nTraceback") == "RuntimeError: x"
    assert first_line(None) == ""


def test_table_aligns_and_fits_100_columns() -> None:
    rows = [["1", "a" * 80, "b" * 80, "c" * 200], ["22", "x", "y", "z"]]
    lines = table(["ID", "NAME", "OTHER", "REST"], rows, right=frozenset({0}),
                  limits={1: 20, 2: 20}).splitlines()
    assert all(width(line) <= 100 for line in lines)
    assert lines[1].startswith(" 1  " + "a" * 17 + "...  ")
    assert lines[2].startswith("22  x")
    assert lines[0].index("OTHER") == lines[2].index("y")
