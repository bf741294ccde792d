"""The fast path for the largest file, activity.csv, on PostgreSQL: its bytes go straight into
`COPY … (FORMAT csv)` and one SQL statement checks every cell at once.

Only a file whose every cell is written plainly takes it. Anything else — a bad or unusually
written cell (surrounding spaces, upper-case workloads), a blank line, any `"` (PostgreSQL and
Python's csv read a quote inside a cell differently) or backslash (a line `\\.` ends COPY's
data), bytes that are not UTF-8, a NUL — leaves nothing staged, and the row-by-row reader
(`files.read_rows`) reads the file again and names every problem as before. The fast path never
decides what is an error, so it cannot change what an import accepts or how it reports; it only
skips Python's per-cell work when there is nothing to report (bench: ~10× the rows per second).
"""

from __future__ import annotations

import codecs
import csv
from typing import IO, TYPE_CHECKING

import psycopg
from django.db import DatabaseError, connection, transaction

from customers.models import Workload
from imports.pipeline import staging
from imports.pipeline.files import ACTIVITY, ID_LENGTH, FileSpec, header_names, iso_date
from imports.pipeline.progress import Progress
from imports.pipeline.sources import UnreadableFile

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

RAW = "import_raw_activity"
CHUNK_BYTES = 1 << 20


def applies(spec: FileSpec) -> bool:
    return spec is ACTIVITY and connection.vendor == "postgresql"


def stage_activity(stream: IO[bytes], progress: Progress | None) -> bool:
    """Stages a plainly written activity.csv through COPY and returns True; returns False with
    nothing staged when any line needs the row-by-row reader. Reads `stream` to its end either
    way (it feeds the import's sha256)."""
    try:
        columns = _columns(stream.readline())
        return columns is not None and _copy_and_check(stream, columns, progress)
    except UnreadableFile:  # a damaged archive entry: the reader reports it, with what came before
        return False
    finally:
        _drain(stream)


def _drain(stream: IO[bytes]) -> None:
    try:
        while stream.read(CHUNK_BYTES):
            pass
    except UnreadableFile:
        pass


def _columns(header_line: bytes) -> list[str] | None:
    """The header's column names (stripped, lower case) when they hold the file's columns once
    each, else None (the reader reports the header's problems)."""
    try:
        [header] = csv.reader([header_line.removeprefix(codecs.BOM_UTF8).decode("utf-8")], strict=True)
    except (UnicodeDecodeError, csv.Error, ValueError):
        return None
    names = header_names(header)
    if len(set(names)) != len(names) or not set(ACTIVITY.column_names) <= set(names):
        return None
    return names


def _copy_and_check(stream: IO[bytes], names: list[str], progress: Progress | None) -> bool:
    raw = [f"c{index}" for index in range(len(names))]
    user, workload, day = (raw[names.index(name)] for name in ACTIVITY.column_names)
    staging.create_temporary(RAW, "n bigint GENERATED ALWAYS AS IDENTITY, " + ", ".join(f"{c} text" for c in raw))
    try:
        # A savepoint inside the import's transaction: a failed COPY undoes only itself.
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {RAW} ({', '.join(raw)}) FROM STDIN WITH (FORMAT csv)") as copy:
                lines = 0
                while chunk := stream.read(CHUNK_BYTES):
                    if b'"' in chunk or b"\\" in chunk:
                        raise _NeedsReader
                    copy.write(chunk)
                    lines += chunk.count(b"\n")
                    if progress:
                        progress.rows(ACTIVITY.name, lines)
            cursor.execute(_unplain_rows(raw, user, workload, day))
            if cursor.fetchone()[0] or not _dates_valid(cursor, day):
                raise _NeedsReader
            # Line = row + 1 (the header): exact, since no cell holds a line break and no line is blank.
            cursor.execute(
                f"INSERT INTO {ACTIVITY.table} (line, user_id, workload, date) "
                f"SELECT n + 1, {user}, {workload}, {day}::date FROM {RAW}"
            )
            rows = cursor.rowcount
    except (DatabaseError, psycopg.Error, _NeedsReader):  # COPY raises psycopg's own errors
        return False
    finally:
        staging.drop_temporary(RAW)
    staging.prepare(ACTIVITY)
    if progress:
        progress.rows(ACTIVITY.name, rows)
    return True


class _NeedsReader(Exception):
    """A cell the fast path does not take as written: the row-by-row reader decides."""


def _unplain_rows(raw: list[str], user: str, workload: str, day: str) -> str:
    """Whether any row has a cell that is not written plainly: an id that is empty, too long or
    starts or ends with anything but visible ASCII (the reader strips white space), a workload
    not in lower case, an empty date (`_dates_valid` reads the others), a line break in any cell."""
    workloads = ", ".join(f"'{value}'" for value in Workload.values)
    no_line_breaks = " AND ".join(f"({c} IS NULL OR strpos({c}, chr(10)) + strpos({c}, chr(13)) = 0)" for c in raw)
    visible_ends = f"ascii({user}) BETWEEN 33 AND 126 AND ascii(right({user}, 1)) BETWEEN 33 AND 126"
    plain = (
        f"{visible_ends} AND length({user}) <= {ID_LENGTH} AND {workload} IN ({workloads}) "
        f"AND {day} IS NOT NULL AND {no_line_breaks}"
    )
    return f"SELECT EXISTS (SELECT 1 FROM {RAW} WHERE NOT ({plain}) OR ({plain}) IS NULL)"


def _dates_valid(cursor: CursorWrapper, day: str) -> bool:
    """Every distinct date (a few hundred) is a calendar date as the reader parses it."""
    cursor.execute(f"SELECT DISTINCT {day} FROM {RAW}")
    try:
        for (value,) in cursor.fetchall():
            iso_date(value)
    except ValueError:
        return False
    return True
