"""The canonical import files of SPEC §6: their columns and how each cell is read.

Each file becomes a staging table of the same columns plus `line`; cell values are parsed and
checked here, row by row while streaming, and references between files are checked later in SQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.db import models

from customers.models import (
    AssignmentState,
    Family,
    Source,
    SubscriptionStatus,
    SupportCategory,
    Workload,
)
from imports.pipeline.issues import ImportIssue, IssueList

MAX_QUANTITY = 2_147_483_647  # the database's integer range
# One cell may be large (long names), but a 10 MB line is not a CSV row: refuse it cleanly.
csv.field_size_limit(1_000_000)


class CellError(ValueError):
    """A cell that cannot be read; the message is the reason shown to the user."""


Parser = Callable[[str], Any]


def text(max_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) > max_length:
            raise CellError(f"longer than {max_length} characters")
        return value

    return parse


def iso_date(value: str) -> dt.date:
    # date.fromisoformat also takes "20240131" and week dates; SPEC §6 asks for YYYY-MM-DD.
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise CellError("not a date in YYYY-MM-DD form")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CellError("not a valid calendar date") from None


def quantity(value: str) -> int:
    # ASCII digits only: str.isdigit() also takes "²" and "١٢", which int() refuses or reads.
    digits = value.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise CellError("not a whole number")
    significant = digits.lstrip("0")
    if significant and value.startswith("-"):
        raise CellError("negative quantity")
    # Compared by length first: int() refuses strings of more than 4,300 digits.
    if len(significant) > len(str(MAX_QUANTITY)) or int(significant or "0") > MAX_QUANTITY:
        raise CellError(f"larger than {MAX_QUANTITY}")
    return int(significant or "0")


def boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered not in {"true", "false"}:
        raise CellError("not a boolean, expected true or false")
    return lowered == "true"


def choice(choices: type[models.TextChoices]) -> Parser:
    allowed = set(choices.values)
    expected = ", ".join(choices.values)

    def parse(value: str) -> str:
        lowered = value.lower()
        if lowered not in allowed:
            raise CellError(f"unknown value, expected one of {expected}")
        return lowered

    return parse


def workload_list(value: str) -> str:
    """Space-separated workloads, returned normalised (lower case, sorted, unique)."""
    parse_one = choice(Workload)
    return " ".join(sorted({parse_one(item) for item in value.split()}))


@dataclass(frozen=True)
class Column:
    name: str
    parse: Parser
    required: bool = True
    sql_type: str = "text"


ID_LENGTH = 200
ID = text(ID_LENGTH)


@dataclass(frozen=True)
class FileSpec:
    """One canonical file. `key` names the columns that identify a row (duplicates are errors)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def table(self) -> str:
        return "import_stage_" + self.name.removesuffix(".csv")

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


CUSTOMERS = FileSpec(
    "customers.csv",
    (Column("customer_id", ID), Column("name", text(300)), Column("domain", text(255), required=False)),
    key=("customer_id",),
)
PRODUCTS = FileSpec(
    "products.csv",
    (
        Column("sku", text(100)),
        Column("name", text(300)),
        Column("family", choice(Family)),
        Column("workloads", workload_list, required=False),
    ),
    key=("sku",),
)
SUBSCRIPTIONS = FileSpec(
    "subscriptions.csv",
    (
        Column("subscription_id", ID),
        Column("customer_id", ID),
        Column("sku", text(100)),
        Column("quantity", quantity, sql_type="bigint"),
        Column("status", choice(SubscriptionStatus)),
        Column("is_trial", boolean, sql_type="boolean"),
        Column("source", choice(Source)),
        Column("start_date", iso_date, required=False, sql_type="date"),
        Column("end_date", iso_date, required=False, sql_type="date"),
    ),
    key=("subscription_id",),
)
USERS = FileSpec(
    "users.csv",
    (
        Column("user_id", ID),
        Column("customer_id", ID),
        Column("upn", text(320)),
        Column("display_name", text(300), required=False),
    ),
    key=("user_id",),
)
ASSIGNMENTS = FileSpec(
    "assignments.csv",
    (
        Column("user_id", ID),
        Column("subscription_id", ID),
        Column("assigned_on", iso_date, sql_type="date"),
        Column("removed_on", iso_date, required=False, sql_type="date"),
        Column("state", choice(AssignmentState)),
    ),
    key=("user_id", "subscription_id", "assigned_on"),
)
ACTIVITY = FileSpec(
    "activity.csv",
    (Column("user_id", ID), Column("workload", choice(Workload)), Column("date", iso_date, sql_type="date")),
    key=(),  # a fact: repeated rows are stored once, not an error
)
SUPPORT_REQUESTS = FileSpec(
    "support_requests.csv",
    (
        Column("request_id", ID),
        Column("customer_id", ID),
        Column("opened_on", iso_date, sql_type="date"),
        Column("category", choice(SupportCategory)),
    ),
    key=("request_id",),
)

# In dependency order: a file only refers to files before it.
FILE_SPECS: tuple[FileSpec, ...] = (CUSTOMERS, PRODUCTS, SUBSCRIPTIONS, USERS, ASSIGNMENTS, ACTIVITY, SUPPORT_REQUESTS)
SPECS_BY_NAME = {spec.name: spec for spec in FILE_SPECS}


def read_rows(spec: FileSpec, stream: IO[bytes], issues: IssueList) -> Iterator[tuple[Any, ...]]:
    """Yields (line, *values) for every row of a file, streaming; records every problem.

    A bad cell is yielded as NULL, so that the set-based checks still find the row's other
    problems (an unknown customer next to a negative quantity) in the same run. A problem with
    the file itself (its header, a broken line) ends the file.
    """
    records = csv_records(spec.name, stream, issues)
    header = next(records, None)
    positions = _header_positions(spec, header[1] if header else None, issues)
    if positions is None:
        return
    for line, record in records:
        yield _parse_record(spec, positions, record, line, issues)


def csv_records(name: str, stream: IO[bytes], issues: IssueList) -> Iterator[tuple[int, list[str]]]:
    """Yields (line, cells) of a UTF-8 CSV file (BOM or not): the header first, then every row
    that is not blank. A broken line is reported and ends the file."""
    # Undecodable bytes become surrogates, so the bad cell can be named exactly (line, column).
    text_stream = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text_stream, strict=True)
    line = 1
    try:
        for record in reader:
            if record or line == 1:
                yield line, record
            line = reader.line_num + 1
    except csv.Error as error:
        issues.add(ImportIssue(name, line, "-", f"unreadable CSV line: {error}"))


def read_cell(raw: str, parse: Parser, *, where: tuple[str, int, str], required: bool, issues: IssueList) -> Any:
    """One stripped cell's value, or None when it is empty or bad (the problem is recorded).

    `where` is (file, line, column) for the error line.
    """
    if not raw:
        if required:
            issues.add(ImportIssue(*where, "required value is empty", raw))
        return None
    try:
        return parse(valid_text(raw))
    except CellError as error:
        issues.add(ImportIssue(*where, str(error), raw))  # the issue shows undecodable bytes as U+FFFD
        return None


def valid_text(raw: str) -> str:
    """`raw` if the database can store it: no undecodable bytes (surrogates) and no NUL."""
    if "\0" in raw:
        raise CellError("contains a NUL character")
    if not raw.isascii():
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            raise CellError("not valid UTF-8 text") from None
    return raw


def header_names(header: list[str]) -> list[str]:
    """A header's column names as compared: stripped, lower case."""
    return [name.strip().lower() for name in header]


def _unreadable_header(header: list[str]) -> tuple[str, str] | None:
    """(reason, value) when the header shows the file is not a comma-separated UTF-8 file."""
    if header[0].startswith(("\udcff\udcfe", "\udcfe\udcff")):  # a UTF-16 byte order mark
        return "the file is UTF-16 text: save it as UTF-8 CSV", ""
    separator = next((sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]), None)
    if separator is not None:
        return f"the columns must be separated by commas, not {separator!r}", header[0]
    return None


def _header_positions(spec: FileSpec, header: list[str] | None, issues: IssueList) -> list[int | None] | None:
    if not header:
        issues.add(ImportIssue(spec.name, 1, "-", "the file is empty: a header row is required"))
        return None
    unreadable = _unreadable_header(header)
    if unreadable is not None:
        issues.add(ImportIssue(spec.name, 1, "-", *unreadable))
        return None
    names = header_names(header)
    problems = False
    for name in sorted({n for n in names if n and names.count(n) > 1}):
        issues.add(ImportIssue(spec.name, 1, name, "column appears more than once in the header", name))
        problems = True
    for column in spec.columns:
        if column.required and column.name not in names:
            found = ",".join(header)
            issues.add(ImportIssue(spec.name, 1, column.name, "required column missing from the header", found))
            problems = True
    if problems:
        return None
    return [names.index(column.name) if column.name in names else None for column in spec.columns]


def _parse_record(
    spec: FileSpec, positions: list[int | None], record: list[str], line: int, issues: IssueList
) -> tuple[Any, ...]:
    values: list[Any] = [line]
    for column, position in zip(spec.columns, positions, strict=True):
        raw = record[position].strip() if position is not None and position < len(record) else ""
        where = (spec.name, line, column.name)
        value = read_cell(raw, column.parse, where=where, required=column.required, issues=issues)
        if not raw and column.sql_type == "text" and not column.required:
            value = ""
        values.append(value)
    return tuple(values)
