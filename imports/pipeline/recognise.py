"""Which file of an import is what: canonical files by name, vendor exports by their content.

A canonical file (SPEC §6) is named as such at the import's root. Any other file is sniffed: JSON
is a vendor export (its shape says which, once parsed); a CSV whose header is the directory's
active-user detail report is one too. The service-level counts report and anything else are
ignored with a warning saying why.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from enum import StrEnum

from imports.pipeline import files
from imports.pipeline.issues import ImportIssue, ImportRejected, IssueList
from imports.pipeline.sources import ImportSource, SourceFile, same_file
from imports.pipeline.vendor_report import ReportKind, report_kind

SNIFF_BYTES = 64 * 1024  # far more than a header line


class Kind(StrEnum):
    JSON = "json"
    REPORT = "active-user detail report"


@dataclass(frozen=True)
class VendorFile:
    kind: Kind
    source_file: SourceFile

    @property
    def folder(self) -> str:
        """The customer folder holding the file: the customer's tenant id ("" at the root)."""
        return self.source_file.folder


@dataclass
class Recognised:
    canonical: dict[str, SourceFile] = field(default_factory=dict)
    vendor: list[VendorFile] = field(default_factory=list)


COUNTS_REPORT = (
    "the service-level active-user counts report has no per-user rows; import the per-user active-user "
    "detail report instead"
)


def recognise(source: ImportSource, warnings: list[str], issues: IssueList) -> Recognised:
    """Sorts the import's files; refuses an import with nothing to read, or with two files that
    are one canonical file (e.g. `export/customers.csv` of one .zip beside an uploaded `customers.csv`)."""
    found = Recognised()
    for source_file in source.files:
        name = source_file.path.lower()
        if name in files.SPECS_BY_NAME:
            if name in found.canonical:
                issues.add(same_file(found.canonical[name], source_file))
            else:
                found.canonical[name] = source_file
            continue
        kind, why = _sniff(source_file)
        if kind is None:
            warnings.append(f"Ignored {source_file.path}: {why}.")
        else:
            found.vendor.append(VendorFile(kind, source_file))
    if not found.canonical and not found.vendor:
        expected = ", ".join(files.SPECS_BY_NAME)
        reason = f"no import files found; expected any of {expected}, or the vendor exports"
        issues.add(ImportIssue(source.name, 0, "-", reason))
    if issues:
        raise ImportRejected(issues)
    return found


def _sniff(source_file: SourceFile) -> tuple[Kind | None, str]:
    with source_file.open() as stream:
        head = stream.read(SNIFF_BYTES).decode("utf-8-sig", errors="replace").lstrip()
    if source_file.path.lower().endswith(".json") or head.startswith(("{", "[")):
        return Kind.JSON, ""
    header = next(csv.reader(head.splitlines()[:1]), [])
    kind = report_kind(header)
    if kind is ReportKind.DETAIL:
        return Kind.REPORT, ""
    return None, COUNTS_REPORT if kind is ReportKind.COUNTS else "not a file this import reads"
