"""Tables for people: values formatted once, rendered as aligned plain text or with ``rich``.

A :class:`Table` holds already formatted cells, so the plain renderer (pipes, logs, tests) and
the terminal renderer (``rich``, only when standard output is a terminal) show the same text.
The formatters say what a reader needs: dollars with cents (more digits below a dollar, so a
demo's first cents are visible), tokens in k/M/B, percentages with one decimal, and ``-`` for a
figure the operator has not written (never a misleading 0).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "MISSING",
    "Table",
    "format_age",
    "format_count",
    "format_percent",
    "format_tokens",
    "format_usd",
    "format_watts",
    "render_plain",
    "render_rich",
]

MISSING = "-"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def format_usd(value: Any, *, signed: bool = False) -> str:
    """``$1,234.56``; below one dollar up to four significant digits and at least cents
    (``$0.40``, ``$0.01234``); ``-`` if absent.

    ``signed`` writes a ``+`` before positive amounts (savings)."""
    number = _number(value)
    if number is None:
        return MISSING
    sign = "-" if number < 0 else ("+" if signed and number > 0 else "")
    magnitude = abs(number)
    if magnitude == 0:
        text = "0.00"
    elif magnitude >= 1:
        text = f"{magnitude:,.2f}"
    elif magnitude >= 1e-4:
        text = f"{magnitude:.4g}"
        decimals = len(text.partition(".")[2])
        text = f"{magnitude:.{max(2, decimals)}f}"
    else:
        text = f"{magnitude:.2e}"
    return f"{sign}${text}"


def format_tokens(value: Any) -> str:
    """``950``, ``12.3k``, ``4.56M``, ``7.89B``."""
    number = _number(value)
    if number is None:
        return MISSING
    magnitude = abs(number)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            scaled = number / limit
            return f"{scaled:.3g}{suffix}" if abs(scaled) < 100 else f"{scaled:,.0f}{suffix}"
    return f"{number:.0f}"


def format_count(value: Any) -> str:
    number = _number(value)
    return MISSING if number is None else f"{number:,.0f}"


def format_percent(value: Any, *, signed: bool = False) -> str:
    """One decimal (``82.0%``); two significant digits below 0.1 % so a small share is not
    shown as nothing (``0.00088%``)."""
    number = _number(value)
    if number is None:
        return MISSING
    sign = "+" if signed else ""
    if 0 < abs(number) < 0.1:
        return f"{number:{sign}.2g}%"
    return f"{number:{sign}.1f}%"


def format_ratio(value: Any) -> str:
    """An efficiency ratio (0..1) as a percentage."""
    number = _number(value)
    return MISSING if number is None else f"{number * 100:.1f}%"


def format_watts(value: Any) -> str:
    number = _number(value)
    return MISSING if number is None else f"{number:,.0f} W"


def format_age(when: dt.datetime | None, now: dt.datetime) -> str:
    """kubectl-style age: ``45s``, ``12m``, ``3h``, ``5d``."""
    if when is None:
        return MISSING
    seconds = max(0, int((now - when).total_seconds()))
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@attrs.frozen
class Table:
    """A titled table of formatted cells; ``right`` names the right-aligned (numeric) columns.

    ``empty`` is what to print when there are no rows; ``notes`` are lines printed under it.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...] = ()
    right: frozenset[str] = frozenset()
    empty: str = "none"
    notes: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"{self.title}: row {row!r} has {len(row)} cells")


def render_plain(tables: Sequence[Table]) -> str:
    """Aligned text, columns separated by two spaces, one blank line between tables."""
    blocks = []
    for table in tables:
        lines = [table.title]
        if not table.rows:
            lines.append(f"  ({table.empty})")
        else:
            widths = [
                max(len(table.columns[i]), *(len(row[i]) for row in table.rows))
                for i in range(len(table.columns))
            ]

            def line(cells: Sequence[str], table: Table = table, widths: list[int] = widths) -> str:
                parts = [
                    cell.rjust(width) if name in table.right else cell.ljust(width)
                    for cell, width, name in zip(cells, widths, table.columns, strict=True)
                ]
                return "  ".join(parts).rstrip()

            lines.append(line(table.columns))
            lines.extend(line(row) for row in table.rows)
        lines.extend(table.notes)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_rich(tables: Sequence[Table], header: Sequence[str] = ()) -> Any:
    """The same tables as one ``rich`` renderable (imported only here)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    parts: list[Any] = [Text(line) for line in header]
    for table in tables:
        if not table.rows:
            parts.append(Text(f"{table.title}: {table.empty}", style="bold"))
        else:
            rich_table = RichTable(
                title=table.title,
                title_justify="left",
                title_style="bold",
                box=box.SIMPLE_HEAD,
                pad_edge=False,
            )
            for name in table.columns:
                rich_table.add_column(name, justify="right" if name in table.right else "left")
            for row in table.rows:
                rich_table.add_row(*row)
            parts.append(rich_table)
        parts.extend(Text(note, style="dim") for note in table.notes)
    return Group(*parts)
