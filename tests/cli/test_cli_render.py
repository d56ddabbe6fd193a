"""The CLI's human output: relative times, cells, cuts, wrapping, tables within a width."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from queuetopia_lite.cli.layout import Column, cut_middle, sizes_for, terminal_width, wrap
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


@pytest.mark.parametrize(("text", "size", "expected"), [
    ("photos_device_0042", 18, "photos_device_0042"), ("photos_device_0042", 13, "photo..._0042"),
    ("photos_device_0042", 12, "photo...0042"), ("日本語のキュー", 9, "日...ー"),
    ("abcdef", 4, "a..."),
])
def test_cut_middle_keeps_both_ends(text: str, size: int, expected: str) -> None:
    assert cut_middle(text, size) == expected
    assert width(cut_middle(text, size)) <= size


def test_wrap_breaks_at_spaces_and_splits_long_words() -> None:
    assert wrap("since 5 min ago by job 12, next retry in 59 min", 20) == [
        "since 5 min ago by", "job 12, next retry", "in 59 min"]
    assert wrap("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert wrap("", 10) == [""]


def test_terminal_width_follows_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "173")
    assert terminal_width() == 173
    monkeypatch.setenv("COLUMNS", "10")
    assert terminal_width() == 40  # narrower is not useful: lines run over instead


def test_sizes_keep_names_whole_while_the_last_column_gives_way() -> None:
    cols = [Column("ID", right=True), Column("NAME", least=12, middle=True),
            Column("REST", least=10, yields=1)]
    rows = [["1", "n" * 30, "r" * 100]]
    assert sizes_for(cols, rows, 80) == [2, 30, 80 - 2 - 30 - 4]
    assert sizes_for(cols, rows, 200) == [2, 30, 100]
    # Too narrow even with the last column at its least: the name is cut, not below 12.
    assert sizes_for(cols, rows, 40) == [2, 24, 10]
    assert sizes_for(cols, rows, 20) == [2, 12, 10]


def test_table_aligns_and_fits_the_width() -> None:
    rows = [["1", "a" * 80, "b" * 80, "c" * 200], ["22", "x", "y", "z"]]
    cols = [Column("ID", right=True), Column("NAME", least=12, middle=True),
            Column("OTHER", least=12), Column("REST", least=10, yields=1)]
    lines = table(cols, rows, 100)
    assert all(width(line) <= 100 for line in lines)
    # The last column at its least; the other two share the rest, 41 columns each.
    name, other, rest = "a" * 19 + "..." + "a" * 19, "b" * 38 + "...", "c" * 7 + "..."
    assert lines[1] == f" 1  {name}  {other}  {rest}"
    assert lines[2].startswith("22  x")
    assert lines[0].index("OTHER") == lines[2].index("y")


def test_a_wrapping_column_continues_on_aligned_lines() -> None:
    cols = [Column("NAME"), Column("DETAIL", least=10, yields=1, wrap=True)]
    lines = table(cols, [["q1", "next retry in 59 min"], ["q2", "idle"]], 16)
    assert lines == ["NAME  DETAIL", "q1    next retry", "      in 59 min", "q2    idle"]
