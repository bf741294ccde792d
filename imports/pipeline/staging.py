"""Staging tables: each file's parsed rows land in a temporary table, then SQL checks them.

PostgreSQL loads them with COPY (about 1M rows/s); SQLite with batched inserts. Either way
memory stays flat: rows stream from the file to the table. Every staging table has a `file`
column beside `line`, so a problem names the file it came from: several files (vendor exports)
may feed one table, and the canonical file's name is its default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

from django.db import connection

from imports.pipeline.files import FILE_SPECS, FileSpec
from imports.pipeline.progress import Progress

SQLITE_BATCH = 5_000
PROGRESS_EVERY = 100_000


def create_tables() -> None:
    for spec in FILE_SPECS:
        columns = ", ".join(f"{c.name} {c.sql_type}" for c in spec.columns)
        create_temporary(spec.table, f"line integer NOT NULL, file text NOT NULL DEFAULT '{spec.name}', {columns}")


def drop_tables() -> None:
    for spec in FILE_SPECS:
        drop_temporary(spec.table)


def create_temporary(table: str, columns: str, index: Sequence[str] = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TEMPORARY TABLE {table} ({columns})")
        if index:
            cursor.execute(f"CREATE INDEX {table}_key ON {table} ({', '.join(index)})")


def drop_temporary(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def load(
    spec: FileSpec, rows: Iterable[tuple[Any, ...]], progress: Progress | None, *, file: str | None = None
) -> None:
    """Streams (line, *values) rows into the file's staging table.

    `file` names the rows' file when it is not the canonical one (a vendor export).
    """
    columns = ["line", *spec.column_names]
    if file is not None:
        columns.insert(1, "file")
        rows = ((row[0], file, *row[1:]) for row in rows)
    copy_rows(spec.table, columns, counting(rows, file or spec.name, progress))
    prepare(spec)


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Appends rows to a temporary table, streaming."""
    names = ", ".join(columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
            iterator = iter(rows)
            while batch := list(islice(iterator, SQLITE_BATCH)):
                cursor.executemany(sql, batch)


def prepare(spec: FileSpec) -> None:
    """Indexes the staged rows by their key once loaded (cheaper than while loading)."""
    with connection.cursor() as cursor:
        if spec.key:
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {spec.table}_key ON {spec.table} ({', '.join(spec.key)})")
        analyze(spec.table)


def analyze(table: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")  # temporary tables get no automatic statistics


def count(spec: FileSpec) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {spec.table}")
        rows: int = cursor.fetchone()[0]
        return rows


def counting(rows: Iterable[tuple[Any, ...]], name: str, progress: Progress | None) -> Iterable[tuple[Any, ...]]:
    """Passes rows through, telling `progress` how many of `name` were read now and then."""
    if progress is None:
        yield from rows
        return
    count = 0
    for count, row in enumerate(rows, start=1):
        if count % PROGRESS_EVERY == 0:
            progress.rows(name, count)
        yield row
    progress.rows(name, count)
