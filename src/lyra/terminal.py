"""How Lyra prints on a terminal: data literally, and tables that fit the width they are given.

Data (model ids, client names, tags, file names, error text, model output) is never read as rich
markup or emoji codes: `openai/gpt-oss-20b:free` stays that, `[clients.NAME]` stays that. The consoles
made here have emoji and highlighting off, and `fit_table` turns every str cell into a literal `Text`.

A fitted table never cuts a word: each column gets at least its longest word (numbers and other
`whole` columns their longest value); when even that is too wide, the columns with the highest
`drop` rank are left out, one at a time, until the rest fits. When the width is larger, columns get
their natural width, so a wide terminal shows every column unwrapped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleDimensions, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

# Output that is not a terminal (pipes, logs, CI) and names no COLUMNS gets this width.
PIPED_WIDTH = 160

Cell = str | Text | None


class DataConsole(Console):
    """A console that prints data literally: no emoji codes, no highlighting of numbers or paths.

    Its width is read at each print: $COLUMNS when set, else the terminal's, else PIPED_WIDTH.
    Markup in the caller's own format strings still works; interpolate data with `escape()` or `Text`.
    """

    def __init__(self, *, stderr: bool = False, width: int | None = None) -> None:
        super().__init__(stderr=stderr, emoji=False, highlight=False, width=width)
        self._fixed_width = width

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self._fixed_width is not None:
            return dimensions
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return ConsoleDimensions(int(columns), dimensions.height)
        if self.is_terminal:
            return dimensions
        return ConsoleDimensions(PIPED_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        width, height = new_size
        self._fixed_width = width
        self._width, self._height = width, height


def data_console(*, stderr: bool = False, width: int | None = None) -> DataConsole:
    """The console every command prints with (see DataConsole)."""
    return DataConsole(stderr=stderr, width=width)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a fitted table.

    whole: its values are never wrapped (numbers, amounts); otherwise they wrap at spaces only.
    drop: 0 = always shown; higher ranks are left out first when the table cannot fit.
    """

    header: str
    justify: Literal["left", "right", "center"] = "left"
    whole: bool = False
    drop: int = 0
    footer: str = ""


@dataclass(slots=True)
class FitTable:
    """Columns and rows, turned into a rich Table for a given width by `fit_table`."""

    title: str | Text | None = None
    columns: list[Column] = field(default_factory=list)
    rows: list[tuple[list[Text], str | None]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # passed to rich's Table (caption, box, ...)

    @property
    def caption(self) -> object:
        return self.options.get("caption")

    @caption.setter
    def caption(self, value: str | Text | None) -> None:
        self.options["caption"] = Text(value) if isinstance(value, str) else value

    def column(self, header: str, *, justify: Literal["left", "right", "center"] = "left",
               whole: bool = False, drop: int = 0, footer: str = "") -> None:
        self.columns.append(Column(header, justify, whole, drop, footer))

    def row(self, *cells: Cell, style: str | None = None) -> None:
        padded = [*cells, *[None] * (len(self.columns) - len(cells))]
        self.rows.append(([_literal(c) for c in padded], style))

    add_row = row  # the name rich's Table uses

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield fit_table(self, options.max_width)


def _literal(cell: Cell) -> Text:
    if cell is None:
        return Text("")
    return cell if isinstance(cell, Text) else Text(str(cell))


def _widest(texts: Sequence[Text], *, whole: bool) -> int:
    """The narrowest a column can be without cutting a word (or, when whole, a value)."""
    widest = 1
    for text in texts:
        for line in text.plain.splitlines() or [""]:
            if whole:
                widest = max(widest, cell_len(line))
            else:
                widest = max(widest, *(cell_len(word) for word in line.split()), 1)
    return widest


def _natural(texts: Sequence[Text]) -> int:
    return max([1, *(cell_len(line) for t in texts for line in t.plain.splitlines())])


def fit_table(spec: FitTable, width: int) -> Table:
    """A rich Table of `spec` at most `width` cells wide, no word cut, least useful columns dropped."""
    kept = list(range(len(spec.columns)))
    while True:
        table = _build(spec, kept)
        header_of = [Text(spec.columns[i].header) for i in kept]
        footer_of = [Text(spec.columns[i].footer) for i in kept]
        cells = [[row[i] for row, _ in spec.rows] for i in kept]
        least = [max(_widest([h, f], whole=False), _widest(c, whole=spec.columns[i].whole))
                 for i, h, f, c in zip(kept, header_of, footer_of, cells, strict=True)]
        most = [max(low, _natural([h, f, *c]))
                for low, h, f, c in zip(least, header_of, footer_of, cells, strict=True)]
        padding = [table._get_padding_width(n) for n in range(len(kept))]
        room = width - table._extra_width - sum(padding)
        droppable = [i for i in kept if spec.columns[i].drop > 0]
        if sum(least) <= room or not droppable:
            break
        kept.remove(max(droppable, key=lambda i: (spec.columns[i].drop, i)))
    widths = _share(least, most, room)
    title = cell_len(spec.title.plain if isinstance(spec.title, Text) else spec.title or "")
    short = min(title, width) - (sum(widths) + sum(padding) + table._extra_width)
    if short > 0 and widths:
        widths[0] += short  # as wide as its title, which then stays on one line
    for column, size in zip(table.columns, widths, strict=True):
        column.width = size
    return table


def _share(least: list[int], most: list[int], room: int) -> list[int]:
    """Widths between least and most: everyone's least, then the rest to the columns that want more."""
    if sum(most) <= room:
        return most
    widths = list(least)
    spare = room - sum(widths)
    while spare > 0:
        wanting = [n for n, (w, m) in enumerate(zip(widths, most, strict=True)) if w < m]
        if not wanting:
            break
        for n in wanting:
            if spare == 0:
                break
            widths[n] += 1
            spare -= 1
    return widths


def _build(spec: FitTable, kept: Sequence[int]) -> Table:
    options = {"box": box.SIMPLE_HEAD, "pad_edge": False, "show_edge": False, **spec.options}  # compact
    if any(spec.columns[i].footer for i in kept):
        options.setdefault("show_footer", True)
    table = Table(title=spec.title, **options)
    for i in kept:
        c = spec.columns[i]
        table.add_column(c.header, footer=c.footer, justify=c.justify, overflow="fold")
    for row, style in spec.rows:
        table.add_row(*(row[i] for i in kept), style=style)
    return table


__all__ = ["PIPED_WIDTH", "Column", "DataConsole", "FitTable", "data_console", "fit_table"]
