"""The COPY fast path of activity.csv (imports/pipeline/copy_csv.py) takes only plainly written
files, and an import gives exactly what the row-by-row reader gives: the same rows, counts,
warnings and error lines, whichever path read the file."""

from __future__ import annotations

import pytest
from django.db import connection, transaction  # noqa: F401 (connection: the skipif condition)

from imports.pipeline import copy_csv
from tests.test_import import imported, run_import, snapshot, str_issue, write  # noqa: F401 (imported: a fixture)

pytestmark = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the COPY path is PostgreSQL's")

HEADER = b"user_id,workload,date\n"
# name: (activity.csv, whether the fast path takes it)
CASES = {
    "plain": (HEADER + b"U1,exchange,2024-02-01\nU2,teams,2024-02-03\n", True),
    "BOM and CRLF line ends": (b"\xef\xbb\xbfuser_id,workload,date\r\nU1,exchange,2024-02-01\r\n", True),
    "columns reordered and an extra one": (
        b"date,note,user_id,workload\n2024-02-01,a b,U1,exchange\n2024-02-02,,U2,yammer\n",
        True,
    ),
    "quoted cells": (b'user_id,workload,date\n"U1",exchange,"2024-02-01"\n"U2","a, b",2024-02-02\n', False),
    "quotes inside cells": (HEADER + b'U"1",exch"ange",2024-02-01\nU2,teams,2024-02-03\n', False),
    "a line of backslash and dot": (HEADER + b"U1,exchange,2024-02-01\n\\.\nU2,teams,2024-02-03\n", False),
    "a backslash in an id": (HEADER + b"DOMAIN\\U1,exchange,2024-02-01\n", False),
    "a repeated row and no final line end": (HEADER + b"U1,exchange,2024-02-01\nU1,exchange,2024-02-01", True),
    "an unknown user and a bad row": (HEADER + b"U1,teams,2024-02-01\nU404,teams,2024-02-01\nU1,x,", False),
    "unknown user, cells plain": (HEADER + b"U1,teams,2024-02-01\nU2,teams,2024-02-02\nU404,teams,2024-02-01\n", True),
    "header only": (HEADER, True),
    "spaces around cells": (HEADER + b" U1 ,exchange, 2024-02-01\n", False),
    "upper-case workload": (HEADER + b"U1,Exchange,2024-02-01\n", False),
    "a blank line": (HEADER + b"U1,exchange,2024-02-01\n\nU2,teams,2024-02-03\n", False),
    "a quoted line break in an id": (HEADER + b'"U\n1",exchange,2024-02-01\nU404,teams,2024-02-01\n', False),
    "an impossible date": (HEADER + b"U1,exchange,2024-02-30\n", False),
    "a date of another form": (HEADER + b"U1,exchange,20240201\n", False),
    "an empty required cell": (HEADER + b"U1,,2024-02-01\n", False),
    "a missing cell": (HEADER + b"U1,exchange\n", False),
    "bytes that are not UTF-8": (HEADER + b"U\xff1,exchange,2024-02-01\n", False),
    "a NUL byte": (HEADER + b"U\x001,exchange,2024-02-01\n", False),
    "an unknown workload": (HEADER + b"U1,skype,2024-02-01\n", False),
    "an id too long": (HEADER + b"U" * 201 + b",exchange,2024-02-01\n", False),
    "a required column missing": (b"user_id,date\nU1,2024-02-01\n", False),
    "a column twice": (b"user_id,workload,date,date\nU1,teams,2024-02-01,2024-02-01\n", False),
}


def outcome(partner, folder, monkeypatch, *, fast: bool) -> tuple[dict, list[bool]]:
    """What an import of `folder` gives (run and stored rows), then undone; and what the fast
    path answered for each file it was offered."""
    answers: list[bool] = []
    stage = copy_csv.stage_activity

    def spy(*args, **kwargs):
        answers.append(stage(*args, **kwargs))
        return answers[-1]

    monkeypatch.setattr(copy_csv, "stage_activity", spy)
    monkeypatch.setattr(copy_csv, "applies", lambda spec: fast and spec.name == "activity.csv")
    savepoint = transaction.savepoint()
    try:
        run = run_import(partner, folder)
        result = {
            "status": run.status,
            "errors": [str_issue(error) for error in run.errors],
            "counts": run.counts,
            "warnings": run.warnings,
            "rows": snapshot(),
        }
    finally:
        transaction.savepoint_rollback(savepoint)
    return result, answers


@pytest.mark.parametrize("case", CASES)
def test_an_import_gives_the_same_whichever_path_reads_activity(partner, imported, monkeypatch, case):
    content, takes_fast_path = CASES[case]
    folder = write(imported / "case", {"activity.csv": content})
    by_reader, _ = outcome(partner, folder, monkeypatch, fast=False)
    by_copy, answers = outcome(partner, folder, monkeypatch, fast=True)
    assert by_copy == by_reader
    assert answers == [takes_fast_path]


def test_line_numbers_of_copied_rows_name_the_right_line(partner, imported, monkeypatch):
    content = HEADER + b"U1,teams,2024-02-01\nU2,teams,2024-02-02\nU404,teams,2024-02-01\n"
    result, answers = outcome(partner, write(imported / "lines", {"activity.csv": content}), monkeypatch, fast=True)
    assert answers == [True]
    assert result["status"] == "failed"
    assert result["errors"] == [
        "activity.csv:4:user_id: unknown user: not in this import nor already stored (value 'U404')"
    ]


def test_a_file_the_fast_path_refuses_still_feeds_the_whole_file_to_the_checksum(partner, imported, monkeypatch):
    """The import's sha256 is of the whole content, however far the fast path read."""
    content = HEADER + b"U1,exchange,2024-02-01\n" * 5000 + b"U1,Exchange,2024-02-01\n"
    folder = write(imported / "sum", {"activity.csv": content})
    checksums = {}
    for fast in (False, True):
        monkeypatch.setattr(copy_csv, "applies", lambda spec, fast=fast: fast and spec.name == "activity.csv")
        checksums[fast] = run_import(partner, folder).sha256
    assert checksums[True] == checksums[False]
