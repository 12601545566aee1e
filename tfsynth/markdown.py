"""Markdown tables, written one way for every report of the project (TF-free, standard library only).

    | a | b |
    |---|---|
    | 1 | 2 |

Cells go through str(); callers format numbers themselves.
"""
from __future__ import annotations

from typing import Iterable, Sequence


def row(cells: Iterable) -> str:
    """'| c1 | c2 | ... |'."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def rule(columns: int) -> str:
    """The header rule of a table of `columns` columns: '|---|---|...|'."""
    return "|" + "---|" * columns


def table_lines(header: Sequence, rows: Iterable[Iterable]) -> list[str]:
    """Header, rule and one line per row, as a list of lines (to extend with captions and notes)."""
    return [row(header), rule(len(header))] + [row(r) for r in rows]


def table(header: Sequence, rows: Iterable[Iterable]) -> str:
    """The table as text, lines joined by newlines, without a final newline."""
    return "\n".join(table_lines(header, rows))
