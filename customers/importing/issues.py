"""Problems found in import input, reported as `FILE:LINE:COLUMN: reason (value 'VALUE')`."""

from __future__ import annotations

from dataclasses import dataclass, field

# The list shown to people is capped; the count is not.
MAX_REPORTED = 200
_VALUE_PREVIEW = 80


@dataclass(frozen=True)
class ImportIssue:
    """One problem. Line 1 is the header; line 0 means the file as a whole."""

    file: str
    line: int
    column: str
    reason: str
    value: str = ""

    def __str__(self) -> str:
        value = self.value if len(self.value) <= _VALUE_PREVIEW else self.value[:_VALUE_PREVIEW] + "…"
        return f"{self.file}:{self.line}:{self.column}: {self.reason} (value '{value}')"

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
