"""Tables that every command prints three ways: ``--format table|csv|json``.

A :class:`Table` holds raw values (numbers stay numbers) and, per :class:`Column`, how the
terminal shows them. The three formats:

``table`` (the default)
    rich tables for a terminal, numbers abbreviated by each column's formatter; the
    command's other lines (where the report went, which mapping ran) are printed too.
``csv``
    the raw values, one header row per table (:mod:`csv`, so commas and quotes are
    escaped). A command with several tables prints each as a block headed by a comment
    line ``# TITLE`` and separated by a blank line; a command with one table prints a
    plain CSV. Nested values (a dict of actions) are JSON strings.
``json``
    the command's full result where it has one (as its ``--json`` always printed), else
    ``{"tables": [{"title", "columns", "rows": [{column: value}]}]}``.

In the csv and json formats stdout carries only the data; every other line goes to
stderr (:func:`note`), so ``einarray simulate C --format csv > t.csv`` is a clean file.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TextIO

FORMATS = ("table", "csv", "json")


@dataclass(frozen=True)
class Cell:
    """A value with its own terminal text (for a column whose rows differ in unit, such as
    a summary's metric/value table)."""

    value: Any
    text: str


def raw(v: Any) -> Any:
    return v.value if isinstance(v, Cell) else v


@dataclass(frozen=True)
class Column:
    """One column: its header, how the terminal shows a value (``fmt``; default ``str``),
    whether it is numeric (right-aligned, never wrapped), and its name in the data formats
    (``key``: say the unit of the raw value there, e.g. ``latency_s``)."""

    header: str
    fmt: Callable[[Any], str] | None = None
    numeric: bool = False
    key: str | None = None  # the name in csv and json (with its unit), default the header

    def text(self, v: Any) -> str:
        if isinstance(v, Cell):
            return v.text
        if v is None:
            return ""
        return self.fmt(v) if self.fmt is not None else str(v)


@dataclass
class Table:
    title: str
    columns: Sequence[Column]
    rows: list[Sequence[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.title!r}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def headers(self) -> list[str]:
        """The column names of the data formats."""
        return [c.key or c.header for c in self.columns]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.headers(), map(raw, r))) for r in self.rows]

    def to_rich(self) -> Any:
        from rich.markup import escape
        from rich.table import Table as RichTable

        t = RichTable(title=escape(self.title))
        texts = [[c.text(v) for c, v in zip(self.columns, r)] for r in self.rows]
        for i, c in enumerate(self.columns):
            if c.numeric:
                width = max([len(r[i]) for r in texts] + [1])
                t.add_column(escape(c.header), justify="right", no_wrap=True, min_width=width)
            else:
                t.add_column(escape(c.header), overflow="fold")
        for r in texts:
            t.add_row(*[escape(x) for x in r])
        return t

    def write_csv(self, out: TextIO) -> None:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(self.headers())
        for r in self.rows:
            w.writerow([_csv_cell(v) for v in r])


def _csv_cell(v: Any) -> Any:
    v = raw(v)
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=float)
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def add_format_args(p: argparse.ArgumentParser, *, json_help: str | None = None) -> None:
    """``--format table|csv|json`` and its shorthand ``--json``."""
    p.add_argument("--format", choices=FORMATS, default=None, dest="format",
                   help="how to print the tables: table (terminal, default), csv (raw values) or json")
    p.add_argument("--json", action="store_true",
                   help=json_help or "print the result as JSON (the same as --format json)")


def output_format(args: argparse.Namespace) -> str:
    """The chosen format; ``--json`` with another ``--format`` is an error."""
    fmt = getattr(args, "format", None)
    if getattr(args, "json", False):
        if fmt not in (None, "json"):
            from einsum.errors import ConfigError

            raise ConfigError(f"--json and --format {fmt} disagree: give one of them")
        return "json"
    return fmt or "table"


def note(fmt: str, text: str, *, console: Any = None) -> None:
    """An informational line: on the terminal in the table format, else on stderr (the
    data formats keep stdout for data). ``text`` may hold rich markup."""
    if fmt == "table":
        if console is None:
            from rich.console import Console

            console = Console()
        console.print(text)
    else:
        from rich.text import Text

        print(Text.from_markup(text).plain, file=sys.stderr)


def emit(tables: Sequence[Table], fmt: str, *, result: Any = None, out: TextIO | None = None,
         console: Any = None) -> None:
    """Print ``tables`` in ``fmt``; in the json format the command's ``result`` (when it has
    one) is printed instead of the tables."""
    out = out or sys.stdout
    if fmt == "json":
        data = result if result is not None else {
            "tables": [{"title": t.title, "columns": t.headers(), "rows": t.records()} for t in tables]}
        from einarray.report import dumps

        out.write(dumps(data))
    elif fmt == "csv":
        for i, t in enumerate(tables):
            if len(tables) > 1:
                out.write(("\n" if i else "") + f"# {t.title}\n")
            t.write_csv(out)
    else:
        if console is None:
            from rich.console import Console

            console = Console()
        for t in tables:
            console.print(t.to_rich())

