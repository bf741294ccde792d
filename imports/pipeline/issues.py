"""Problems found in import input, reported as `FILE:LINE:COLUMN: reason (value 'VALUE')`."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

# The list shown to people is capped; the count is not.
MAX_REPORTED = 200
_VALUE_PREVIEW = 80
# A bad cell may be a megabyte long: the stored problem keeps its beginning only.
MAX_VALUE_CHARS = 200


def storable(text: str) -> str:
    """`text` as the database can store it: undecodable bytes (surrogates) and NUL, which
    PostgreSQL refuses in text and JSON, become U+FFFD."""
    if text.isascii() and "\0" not in text:
        return text
    return "".join("\ufffd" if c == "\0" or "\ud800" <= c <= "\udfff" else c for c in text)


def one_line(text: str) -> str:
    """`text` on one visible line: control and format characters (line breaks, a right-to-left
    override) are written as escapes, so an error line stays one line and reads as it is."""
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in {"Cc", "Cf"} else c for c in text)


@dataclass(frozen=True)
class ImportIssue:
    """One problem. Line 1 is the header; line 0 means the file as a whole."""

    file: str
    line: int
    column: str
    reason: str
    value: str = ""

    def __post_init__(self) -> None:
        value = self.value if len(self.value) <= MAX_VALUE_CHARS else self.value[:MAX_VALUE_CHARS] + "…"
        for name, text in (("file", self.file), ("column", self.column), ("reason", self.reason), ("value", value)):
            object.__setattr__(self, name, storable(text))

    def __str__(self) -> str:
        value = self.value if len(self.value) <= _VALUE_PREVIEW else self.value[:_VALUE_PREVIEW] + "…"
        file, column, reason = (one_line(text) for text in (self.file, self.column, self.reason))
        return f"{file}:{self.line}:{column}: {reason} (value '{one_line(value)}')"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column, "reason": self.reason, "value": self.value}


@dataclass
class IssueList:
    """Collects problems, keeping the first MAX_REPORTED in file order and counting all."""

    reported: list[ImportIssue] = field(default_factory=list)
    total: int = 0

    def add(self, issue: ImportIssue) -> None:
        self.total += 1
        if len(self.reported) < MAX_REPORTED:
            self.reported.append(issue)

    def add_counted(self, issues: list[ImportIssue], total: int) -> None:
        """Adds the first few of `total` problems found by one set-based check."""
        for issue in issues:
            self.add(issue)
        self.total += total - len(issues)

    @property
    def room(self) -> int:
        return MAX_REPORTED - len(self.reported)

    def __bool__(self) -> bool:
        return self.total > 0

    def sorted(self) -> list[ImportIssue]:
        return sorted(self.reported, key=lambda i: (i.file, i.line))

    def summary(self) -> list[str]:
        lines = [str(issue) for issue in self.sorted()]
        if self.total > len(self.reported):
            lines.append(f"… and {self.total - len(self.reported)} more problems not listed")
        return lines


class ImportRejected(Exception):
    """The input has problems: nothing was written."""

    def __init__(self, issues: IssueList) -> None:
        super().__init__(f"{issues.total} problem(s) in the import")
        self.issues = issues
