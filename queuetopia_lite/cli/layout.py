"""Text layout for the CLI: printable cells, cuts, wrapping, and tables sized to the terminal."""

from __future__ import annotations

import dataclasses
import shutil
import unicodedata
from typing import Sequence

WIDTH = 100  # columns when the terminal's width is unknown (output to a pipe or a file)
MIN_WIDTH = 40  # columns: narrower terminals get lines that run over
ELLIPSIS = "..."  # ASCII: a terminal in the C locale must still print it
GAP = "  "  # between columns


def terminal_width() -> int:
    """The terminal's columns: $COLUMNS if set, else the terminal's own, else WIDTH."""
    return max(shutil.get_terminal_size((WIDTH, 24)).columns, MIN_WIDTH)


# -- cells ------------------------------------------------------------------------


def clean(text: str) -> str:
    """One line of printable text: control characters (newlines too) become spaces.

    Queue names, actions and errors are user data; a newline in one must not
    break a table's alignment.
    """
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def width(text: str) -> int:
    """Terminal columns of ``text``: wide (East Asian) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _take(text: str, size: int) -> str:
    """The longest start of ``text`` that fits ``size`` columns."""
    out, used = "", 0
    for c in text:
        used += width(c)
        if used > size:
            break
        out += c
    return out


def fit(text: str, size: int) -> str:
    """``text`` cut to at most ``size`` columns, marked with an ellipsis when cut."""
    if width(text) <= size:
        return text
    out = _take(text, max(size - len(ELLIPSIS), 0))
    return out + ELLIPSIS[: size - width(out)]


def cut_middle(text: str, size: int) -> str:
    """``text`` in at most ``size`` columns, its middle replaced by an ellipsis when cut.

    Names often differ only at their end (``photos_device_0042``): the start and
    the end both stay visible (``photos_...0042``).
    """
    if width(text) <= size:
        return text
    room = size - len(ELLIPSIS)
    if room < 2:
        return fit(text, size)
    head = _take(text, room - room // 2)
    tail = _take(text[::-1], room // 2)[::-1]
    return head + ELLIPSIS + tail


def wrap(text: str, size: int) -> list[str]:
    """``text`` broken into lines of at most ``size`` columns, at spaces where possible."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if width(candidate) <= size:
            line = candidate
            continue
        if line:
            lines.append(line)
        while width(word) > size:  # a word longer than a line is split
            piece = _take(word, max(size, 1)) or word[0]
            lines.append(piece)
            word = word[len(piece):]
        line = word
    lines.append(line)
    return lines


# -- tables -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a table and what may happen to its cells when space runs short.

    Attributes:
        title: the header.
        right: right-aligned (numbers).
        least: None: never narrowed; else the fewest columns it may be narrowed to.
        yields: columns that yield more are narrowed first (those of one rank together).
        middle: a narrowed cell loses its middle (names), not its end.
        wrap: a narrowed cell wraps onto more lines instead of being cut.
    """

    title: str
    right: bool = False
    least: int | None = None
    yields: int = 0
    middle: bool = False
    wrap: bool = False


def sizes_for(columns: Sequence[Column], rows: Sequence[Sequence[str]], total: int) -> list[int]:
    """Column widths: each as wide as its widest cell, narrowed only to fit ``total``.

    Columns that yield most give way first, down to their least; columns of
    one rank give way together, the one with the most to spare first. Names
    yield least, so they stay whole whenever the terminal has room for them.
    """
    sizes = [max([width(col.title)] + [width(row[i]) for row in rows])
             for i, col in enumerate(columns)]
    least = [max(width(c.title), c.least) if c.least is not None else s
             for c, s in zip(columns, sizes, strict=True)]
    excess = sum(sizes) + len(GAP) * (len(sizes) - 1) - total
    for rank in sorted({c.yields for c in columns}, reverse=True):
        group = [i for i, c in enumerate(columns) if c.yields == rank]
        while excess > 0:
            most = max(group, key=lambda i: sizes[i] - least[i])
            if sizes[most] <= least[most]:
                break  # this rank is as narrow as it goes: the next one gives way
            sizes[most] -= 1
            excess -= 1
    return sizes  # still too wide for a very narrow terminal: the lines run over


def table(columns: Sequence[Column], rows: Sequence[Sequence[str]], total: int) -> list[str]:
    """Aligned lines (the header first) within ``total`` columns where possible."""
    header, blocks = table_blocks(columns, rows, total)
    return [header] + [line for block in blocks for line in block]


def table_blocks(columns: Sequence[Column], rows: Sequence[Sequence[str]],
                 total: int) -> tuple[str, list[list[str]]]:
    """The header line and, for each row, its lines (more than one where a cell wraps)."""
    cells = [[clean(c) for c in row] for row in rows]
    sizes = sizes_for(columns, cells, total)
    blocks = []
    for row in cells:
        parts = [_cell(text, col, size) for text, col, size in zip(row, columns, sizes,
                                                                   strict=True)]
        blocks.append([_line([p[index] if index < len(p) else "" for p in parts], columns, sizes)
                       for index in range(max(len(p) for p in parts))])
    return _line([c.title for c in columns], columns, sizes), blocks


def _cell(text: str, column: Column, size: int) -> list[str]:
    if width(text) <= size:
        return [text]
    if column.wrap:
        return wrap(text, size)
    return [cut_middle(text, size) if column.middle else fit(text, size)]


def _line(cells: Sequence[str], columns: Sequence[Column], sizes: Sequence[int]) -> str:
    parts = []
    for cell, column, size in zip(cells, columns, sizes, strict=True):
        pad = " " * max(size - width(cell), 0)
        parts.append(pad + cell if column.right else cell + pad)
    return GAP.join(parts).rstrip()
