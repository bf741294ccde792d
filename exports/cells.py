"""CSV writing shared by every export (SPEC §7): a BOM, RFC 4180 quoting and formula neutralisation.

Spreadsheets run a cell that begins with one of these characters as a formula (OWASP CSV
injection): text cells that do are prefixed with `'`. Numbers are written as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def neutralise(text: str) -> str:
    """A text cell a spreadsheet shows as text, never runs: `'` before a dangerous first character."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Line:
    """A write-only buffer that hands back what csv.writer wrote, one line at a time."""

    def write(self, text: str) -> str:
        return text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]], text_columns: Sequence[int]) -> Iterator[bytes]:
    """The CSV file as encoded lines: the BOM and the header, then one line per row, the cells at
    `text_columns` neutralised. Lazy, so a response or a file can stream it."""
    writer = csv.writer(_Line())
    text = tuple(text_columns)
    yield BOM + writer.writerow(header).encode()
    for row in rows:
        cells = list(row)
        for index in text:
            cells[index] = neutralise(cells[index])
        yield writer.writerow(cells).encode()
