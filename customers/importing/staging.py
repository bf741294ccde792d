"""Staging tables: each file's parsed rows land in a temporary table, then SQL checks them.

PostgreSQL loads them with COPY (about 1M rows/s); SQLite with batched inserts. Either way
memory stays flat: rows stream from the file to the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from django.db import connection

from customers.importing.files import FILE_SPECS, FileSpec

SQLITE_BATCH = 5_000
PROGRESS_EVERY = 100_000


def create_tables() -> None:
    with connection.cursor() as cursor:
        for spec in FILE_SPECS:
            columns = ", ".join(f"{c.name} {c.sql_type}" for c in spec.columns)
            cursor.execute(f"DROP TABLE IF EXISTS {spec.table}")
            cursor.execute(f"CREATE TEMPORARY TABLE {spec.table} (line integer NOT NULL, {columns})")


def drop_tables() -> None:
    with connection.cursor() as cursor:
        for spec in FILE_SPECS:
            cursor.execute(f"DROP TABLE IF EXISTS {spec.table}")


def load(spec: FileSpec, rows: Iterable[tuple[Any, ...]], progress: Callable[[str, int], None] | None) -> int:
    """Streams rows into the file's staging table; returns how many were loaded."""
    counted = _counting(rows, spec.name, progress)
    columns = ", ".join(["line", *spec.column_names])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {spec.table} ({columns}) FROM STDIN") as copy:
                for row in counted:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * (len(spec.columns) + 1))
            sql = f"INSERT INTO {spec.table} ({columns}) VALUES ({placeholders})"
            iterator = iter(counted)
            while batch := list(islice(iterator, SQLITE_BATCH)):
                cursor.executemany(sql, batch)
        if spec.key:
            cursor.execute(f"CREATE INDEX {spec.table}_key ON {spec.table} ({', '.join(spec.key)})")
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {spec.table}")  # temporary tables get no automatic statistics
        cursor.execute(f"SELECT COUNT(*) FROM {spec.table}")
        return cursor.fetchone()[0]


def _counting(
    rows: Iterable[tuple[Any, ...]], name: str, progress: Callable[[str, int], None] | None
) -> Iterable[tuple[Any, ...]]:
    if progress is None:
        yield from rows
        return
    count = 0
    for count, row in enumerate(rows, start=1):
        if count % PROGRESS_EVERY == 0:
            progress(name, count)
        yield row
    progress(name, count)
