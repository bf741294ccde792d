"""The directory's per-user active-user detail report (vendor-formats.md §1), read as a stream.

Each row becomes one staged row of the report table: the user, their deletion, the earliest
license assign date, the raw `Assigned Products` and one last-activity date per workload.
Splitting the products needs the known SKU names, so it happens later, once per distinct
`Assigned Products` value (a few hundred combinations, however many users).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

from imports.pipeline import files
from imports.pipeline.issues import ImportIssue, IssueList

# (workload, the report's name for it); Skype for Business has no workload here and is ignored.
WORKLOADS = (
    ("exchange", "Exchange"),
    ("onedrive", "OneDrive"),
    ("sharepoint", "SharePoint"),
    ("yammer", "Yammer"),
    ("teams", "Teams"),
)
# Some sovereign clouds leave these columns out.
OPTIONAL_WORKLOADS = frozenset({"yammer", "teams"})

REFRESH_DATE = "Report Refresh Date"
UPN = "User Principal Name"
DISPLAY_NAME = "Display Name"
IS_DELETED = "Is Deleted"
DELETED_DATE = "Deleted Date"
ASSIGNED_PRODUCTS = "Assigned Products"

# Concealed user names and UPNs are 32 hexadecimal characters (an MD5-like hash).
CONCEALED = re.compile(r"[0-9A-Fa-f]{32}")


class ReportKind(StrEnum):
    DETAIL = "active-user detail"
    COUNTS = "active-user counts"


def report_kind(header: list[str]) -> ReportKind | None:
    """Which of the directory's activity reports a CSV header belongs to, if any."""
    names = set(files.header_names(header))
    if REFRESH_DATE.lower() not in names:
        return None
    if UPN.lower() in names:
        return ReportKind.DETAIL
    if "exchange active" in names or "office 365 active" in names:
        return ReportKind.COUNTS
    return None


def _last_activity(label: str) -> str:
    return f"{label} Last Activity Date"


def _assign_date(label: str) -> str:
    return f"{label} License Assign Date"


def _columns() -> list[tuple[str, bool]]:
    """Every column read, with whether the header must have it."""
    columns = [(REFRESH_DATE, True), (UPN, True), (DISPLAY_NAME, True), (IS_DELETED, True), (DELETED_DATE, True)]
    columns.append((ASSIGNED_PRODUCTS, True))
    for workload, label in WORKLOADS:
        required = workload not in OPTIONAL_WORKLOADS
        columns += [(_last_activity(label), required), (_assign_date(label), required)]
    return columns


@dataclass
class ReportStats:
    """What the reader saw, for the import's warnings."""

    rows: int = 0
    concealed: int = 0


@dataclass(frozen=True)
class _Row:
    file: str
    line: int
    cells: Mapping[str, str]
    issues: IssueList

    def get(self, column: str, parse: files.Parser, *, required: bool = False) -> Any:
        raw = self.cells.get(column, "")
        return files.read_cell(raw, parse, where=(self.file, self.line, column), required=required, issues=self.issues)


def read_report(
    file: str, customer_id: str, stream: IO[bytes], issues: IssueList, stats: ReportStats
) -> Iterator[tuple[Any, ...]]:
    """Yields the rows of the report table (see `vendor_sql.REPORT`), streaming."""
    records = files.csv_records(file, stream, issues)
    header = next(records, None)
    positions = _positions(file, header[1] if header else [], issues)
    if positions is None:
        return
    for line, record in records:
        cells = {column: record[at].strip() for column, at in positions.items() if at < len(record)}
        row = _Row(file, line, cells, issues)
        stats.rows += 1
        stats.concealed += bool(CONCEALED.fullmatch(cells.get(UPN, "")))
        yield (line, customer_id, *_values(row))


def _positions(file: str, header: list[str], issues: IssueList) -> dict[str, int] | None:
    names = files.header_names(header)
    missing = [column for column, required in _columns() if required and column.lower() not in names]
    for column in missing:
        issues.add(ImportIssue(file, 1, column, "required column missing from the header", ",".join(header)))
    if missing:
        return None
    return {column: names.index(column.lower()) for column, _ in _columns() if column.lower() in names}


def _values(row: _Row) -> tuple[Any, ...]:
    refresh = row.get(REFRESH_DATE, files.iso_date, required=True)
    assigned = [row.get(_assign_date(label), files.iso_date) for _, label in WORKLOADS]
    return (
        refresh,
        row.get(UPN, files.text(320), required=True),
        row.get(DISPLAY_NAME, files.text(300)) or "",
        bool(row.get(IS_DELETED, files.boolean)),
        row.get(DELETED_DATE, files.iso_date),
        min((date for date in assigned if date is not None), default=refresh),
        row.get(ASSIGNED_PRODUCTS, files.text(4000)) or "",
        *(row.get(_last_activity(label), files.iso_date) for _, label in WORKLOADS),
    )


def split_products(value: str, known: Mapping[str, str]) -> list[str]:
    """The product names of an `Assigned Products` cell.

    Names are joined by `+`, but a name may itself contain ` + ` ("ENTERPRISE MOBILITY +
    SECURITY E5"): the longest run of pieces that is a known name (`known` is keyed by upper-case
    name) wins; otherwise a `+` with spaces on both sides stays inside the name.
    """
    pieces = value.split("+")
    names, start = [], 0
    while start < len(pieces):
        end = _longest_known(pieces, start, known) or _spaced_end(pieces, start)
        names.append("+".join(pieces[start:end]).strip())
        start = end
    return [name for name in names if name]


def _longest_known(pieces: list[str], start: int, known: Mapping[str, str]) -> int | None:
    for end in range(len(pieces), start, -1):
        if "+".join(pieces[start:end]).strip().upper() in known:
            return end
    return None


def _spaced_end(pieces: list[str], start: int) -> int:
    end = start + 1
    while end < len(pieces) and pieces[end - 1].endswith(" ") and pieces[end].startswith(" "):
        end += 1
    return end
