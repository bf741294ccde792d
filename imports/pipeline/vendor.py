"""Vendor exports in the import (vendor-formats.md): read, stage, then convert to canonical rows.

`stage_vendor_files` reads every recognised vendor file into the vendor staging tables (the
partner portal's customers straight into the canonical customers table), refuses customer
folders naming no known customer, then runs the conversion of `vendor_sql` so that the
canonical checks and apply of the import service take over. Warnings (skipped items, added
products, concealed user names) go to the import run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from imports.pipeline import files, staging, vendor_json, vendor_report
from imports.pipeline import vendor_sql as sql
from imports.pipeline.issues import ImportIssue, ImportRejected, IssueList
from imports.pipeline.progress import Progress
from imports.pipeline.recognise import Kind, VendorFile
from imports.pipeline.sources import ImportSource
from imports.pipeline.vendor_json import Shape


@dataclass
class _Import:
    """One import's vendor side: where problems and warnings go, and the customer folders' files."""

    partner_id: int
    source: ImportSource
    issues: IssueList
    warnings: list[str]
    progress: Progress | None
    folders: list[tuple[str, str]] = field(default_factory=list)  # (customer folder, file)

    def execute(self, statement: str) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(statement, {"partner_id": self.partner_id})
            return cursor.fetchall() if cursor.description else []


def create_tables() -> None:
    for table in sql.TABLES:
        staging.create_temporary(table.name, table.columns, table.index)


def drop_tables() -> None:
    for table in sql.TABLES:
        staging.drop_temporary(table.name)


def stage_vendor_files(
    *,
    partner_id: int,
    source: ImportSource,
    vendor_files: Iterable[VendorFile],
    issues: IssueList,
    warnings: list[str],
    progress: Progress | None = None,
) -> None:
    """Reads the vendor files and stages their data as canonical rows.

    Raises ImportRejected when a customer folder names no customer of this import or of the
    partner's stored data (with the problems found so far).
    """
    vendor_files = list(vendor_files)
    if not vendor_files:
        return
    run = _Import(partner_id, source, issues, warnings, progress)
    for vendor_file in vendor_files:
        if vendor_file.kind is Kind.REPORT:
            _read_report(run, vendor_file)
        else:
            _read_json(run, vendor_file)
        if progress:
            progress.file_done(vendor_file.source_file.path)
    _check_folders(run)
    _convert(run)


def apply_renewal_fields(*, partner_id: int) -> None:
    """After the canonical apply: the portal's auto-renew flag and billing cycle."""
    with connection.cursor() as cursor:
        cursor.execute(sql.SET_RENEWAL_FIELDS, {"partner_id": partner_id})


def _read_report(run: _Import, vendor_file: VendorFile) -> None:
    path = vendor_file.source_file.path
    if not _in_customer_folder(run, vendor_file):
        return
    stats = vendor_report.ReportStats()
    with run.source.open_hashed(vendor_file.source_file) as stream:
        rows = vendor_report.read_report(path, vendor_file.folder, stream, run.issues, stats)
        _stage(sql.REPORT, path, staging.counting(rows, path, run.progress))
    if stats.concealed:
        run.warnings.append(
            f"{path}: {stats.concealed} of {stats.rows} user names are concealed (32-hex hashes), so per-user "
            "lists are pseudonymous; a tenant admin can turn concealment off in the reports' settings."
        )


def _read_json(run: _Import, vendor_file: VendorFile) -> None:
    path = vendor_file.source_file.path
    with run.source.open_hashed(vendor_file.source_file) as stream:
        document = vendor_json.scan(path, stream, run.issues)
    if document is None:
        return
    if document.shape is None:
        run.issues.add(ImportIssue(path, 0, "-", vendor_json.SHAPE_EXPECTED))
        return
    if document.shape in vendor_json.PER_CUSTOMER and not _in_customer_folder(run, vendor_file):
        return
    if paging := vendor_json.paging_warning(document, path):
        run.warnings.append(paging)
    _stage_document(run, document, vendor_file)


def _stage_document(run: _Import, document: vendor_json.Document, vendor_file: VendorFile) -> None:
    path, customer_id = vendor_file.source_file.path, vendor_file.folder

    def elements() -> Iterator[Any]:
        """The collection's items, read again from the file (scan has read it once)."""
        with run.source.open_again(vendor_file.source_file) as stream:
            yield from vendor_json.elements(path, stream, document)

    if document.shape is Shape.CUSTOMERS:
        rows = vendor_json.customer_rows(elements(), path, run.issues)
        staging.load(files.CUSTOMERS, rows, run.progress, file=path)
    elif document.shape is Shape.SUBSCRIPTIONS:
        rows = vendor_json.subscription_rows(elements(), path, customer_id, run.issues)
        _stage(sql.SUBSCRIPTIONS, path, rows, columns=_columns(sql.SUBSCRIPTIONS)[:-1])  # sku: resolved later
    else:
        _stage(sql.SKUS, path, vendor_json.sku_rows(elements(), path, customer_id, run.issues))
        _stage(sql.SKU_SUBSCRIPTIONS, path, vendor_json.sku_subscription_rows(elements(), path, customer_id))


def _columns(table: sql.TempTable) -> list[str]:
    """A vendor table's column names, in order."""
    return [column.split()[0] for column in table.columns.split(",")]


def _stage(table: sql.TempTable, path: str, rows: Iterable[tuple[Any, ...]], columns: list[str] | None = None) -> None:
    """Appends a file's (line, *values) rows to a vendor table as (line, file, *values)."""
    staging.copy_rows(table.name, columns or _columns(table), ((row[0], path, *row[1:]) for row in rows))


def _in_customer_folder(run: _Import, vendor_file: VendorFile) -> bool:
    path = vendor_file.source_file.path
    if not vendor_file.folder:
        reason = "a customer's export must sit in a folder named by the customer's tenant id"
        run.issues.add(ImportIssue(path, 0, "-", reason))
        return False
    run.folders.append((vendor_file.folder, path))
    return True


def _check_folders(run: _Import) -> None:
    """Refuses the import when a customer folder names no known customer (nothing else to say
    about its rows then: each would repeat that its customer is unknown)."""
    staging.copy_rows(sql.FOLDERS.name, ["customer_id", "file"], run.folders)
    for folder, file in run.execute(sql.UNKNOWN_FOLDERS):
        reason = "customer folder: unknown customer, not in this import nor already stored"
        run.issues.add(ImportIssue(file, 0, "folder", reason, folder))
    if run.issues:
        raise ImportRejected(run.issues)


def _convert(run: _Import) -> None:
    for spec in files.FILE_SPECS:
        staging.prepare(spec)
    for table in sql.TABLES:
        staging.analyze(table.name)
    for statement in sql.BEFORE_PRODUCT_NAMES:
        run.execute(statement)
    _warn_added_products(run)
    known = _known_product_names(run)
    for statement in sql.SUBSCRIPTION_STEPS:
        run.execute(statement)
    _warn_skipped_subscriptions(run)
    _name_assigned_products(run, known)
    for statement in sql.REPORT_STEPS:
        run.execute(statement)
    _warn_unplaced_assignments(run)
    for statement in sql.REMOVAL_STEPS:
        run.execute(statement)


def _known_product_names(run: _Import) -> dict[str, str]:
    """Upper-case product name → SKU, for matching offer names and assigned products; stored in
    the product keys table too. Two SKUs of one name: the smaller SKU."""
    names_by_sku = dict(run.execute(sql.PRODUCT_NAMES_BY_SKU))
    known: dict[str, str] = {}
    for sku, name in sorted(names_by_sku.items()):
        known.setdefault(name.upper(), sku)
    staging.copy_rows(sql.PRODUCT_KEYS.name, ["name_key", "sku"], known.items())
    return known


def _name_assigned_products(run: _Import, known: dict[str, str]) -> None:
    """Splits each distinct `Assigned Products` value into SKUs; one warning per unknown name."""
    pairs: set[tuple[str, str]] = set()
    unknown: dict[str, str] = {}
    for products, file in run.execute(sql.DISTINCT_PRODUCTS):
        for name in vendor_report.split_products(products, known):
            if sku := known.get(name.upper()):
                pairs.add((products, sku))
            else:
                unknown.setdefault(name, file)
    staging.copy_rows(sql.PRODUCT_NAMES.name, ["products", "sku"], sorted(pairs))
    run.warnings.extend(
        f"{file}: assigned product '{name}' is no known SKU's name; its assignments were skipped."
        for name, file in sorted(unknown.items())
    )


def _warn_added_products(run: _Import) -> None:
    run.warnings.extend(
        f"{file}: SKU '{sku}' is not a known product; it was added to your products with family other and no workloads."
        for sku, file in run.execute(sql.ADDED_PRODUCTS)
    )


def _warn_skipped_subscriptions(run: _Import) -> None:
    run.warnings.extend(
        f"{file}: item {line}, subscription '{subscription_id}' (offer '{offer or ''}') matches no SKU "
        "by the tenant's SKU list or its offer name; it was skipped."
        for file, line, subscription_id, offer in run.execute(sql.SKIPPED_SUBSCRIPTIONS)
    )


def _warn_unplaced_assignments(run: _Import) -> None:
    run.warnings.extend(
        f"SKU '{sku}': {count} assignment(s) skipped because customer '{first}'"
        + (f" and {customers - 1} other(s)" if customers > 1 else "")
        + " has no subscription of it."
        for sku, count, first, customers in run.execute(sql.UNPLACED_ASSIGNMENTS)
    )
