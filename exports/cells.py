"""CSV writing shared by every export (SPEC §7): a BOM, RFC 4180 quoting and formula neutralisation.

Spreadsheets run a cell that begins with one of these characters as a formula (OWASP CSV
injection): text cells that do are prefixed with `'`. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
DANGEROUS_FIRST = frozenset(FORMULA_STARTS)
BLOCK_ROWS = 500  # rows per block written: far fewer writes than a line at a time, little memory


def neutralise(text: str) -> str:
    """A text cell a spreadsheet shows as text, never runs: `'` before a dangerous first character."""
    return f"'{text}" if text[:1] in DANGEROUS_FIRST else text


class CsvFile(Iterator[bytes]):
    """The CSV file as encoded blocks: the BOM and the header first (before any row is read), then
    the rows in blocks of up to BLOCK_ROWS lines, the cells at `text_columns` neutralised. Lazy
    and single-pass, so a response or a file can stream it; `rows` counts the rows written."""

    def __init__(self, header: Sequence[str], rows: Iterable[Sequence[Any]], text_columns: Sequence[int]) -> None:
        self.rows = 0
        self._blocks = self._write(header, iter(rows), tuple(text_columns))

    def __next__(self) -> bytes:
        return next(self._blocks)

    def _write(self, header: Sequence[str], rows: Iterator[Sequence[Any]], text: tuple[int, ...]) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        yield BOM + _take(buffer)
        while block := list(islice(rows, BLOCK_ROWS)):
            writer.writerows(_neutralised(block, text))
            self.rows += len(block)
            yield _take(buffer)


def _neutralised(block: list[Sequence[Any]], text: tuple[int, ...]) -> Iterator[tuple[Any, ...]]:
    """The block's rows with their text cells neutralised, column by column: each distinct
    text is checked once (a customer's name repeats on each of its rows)."""
    columns = list(zip(*block, strict=True))
    for index in text:
        safe = {cell: neutralise(cell) for cell in set(columns[index])}
        columns[index] = tuple(map(safe.__getitem__, columns[index]))
    return zip(*columns, strict=True)


def _take(buffer: io.StringIO) -> bytes:
    """What was written to `buffer` since the last take, encoded; the buffer is emptied."""
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data
