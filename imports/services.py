"""The import service: stream every file into staging, check it all, then write it all.

1. each file streams through `files.read_rows` (cell checks) into a temporary staging table
   (a plainly written activity.csv goes straight through COPY on PostgreSQL: `copy_csv`);
   vendor exports, recognised by their content, are read and converted into the same tables
   (`vendor`);
2. `checks.run_checks` looks for duplicates and unknown or crossing references, in SQL;
3. only when nothing is wrong, `apply` upserts the staged rows into the live tables.
All of it runs in one transaction under a per-partner lock: one bad row and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Partner, StaffUser
from core.db import partner_lock
from customers.models import Activity, Product, ProductWorkload
from imports.models import ImportRun
from imports.pipeline import apply, checks, copy_csv, files, recognise, staging, vendor
from imports.pipeline.issues import ImportIssue, ImportRejected, IssueList, storable
from imports.pipeline.sources import ImportSource, SourceFile, UnreadableFile
from imports.pipeline.staging import Progress
from metrics import services as metrics_services
from metrics.models import Trigger
from metrics.tasks import RECOMPUTE_NOT_QUEUED, recompute_enqueue

logger = logging.getLogger(__name__)


def data_import(
    *,
    partner: Partner,
    source: ImportSource,
    origin: str,
    started_by: StaffUser | None = None,
    progress: Progress | None = None,
) -> ImportRun:
    """Imports `source` for `partner` and returns the recorded run (succeeded or failed)."""
    name = storable(source.name)[:500]
    run = ImportRun.objects.create(partner=partner, origin=origin, started_by=started_by, source_name=name)
    issues = IssueList()
    warnings: list[str] = []
    try:
        with transaction.atomic():
            partner_lock("import", partner.pk)
            counts, affected = _stage_check_apply(partner, source, issues, warnings, progress)
    except ImportRejected:
        run.status = ImportRun.Status.FAILED
    except UnreadableFile as error:  # a damaged archive entry, found while reading it
        issues.add(error.issue)
        run.status = ImportRun.Status.FAILED
    except Exception:
        logger.exception("Import %s of partner %s failed unexpectedly", run.pk, partner.slug)
        run.status = ImportRun.Status.FAILED
        issues.add(ImportIssue(source.name, 0, "-", "unexpected error while importing; nothing was written"))
        _finish(run, issues, warnings, source)
        raise
    else:
        run.status = ImportRun.Status.SUCCEEDED
        run.counts = counts
        run.affected_from, run.affected_to = affected
        previous = (
            ImportRun.objects.filter(partner=partner, sha256=source.sha256, status=ImportRun.Status.SUCCEEDED)
            .exclude(pk=run.pk)
            .first()
        )
        if previous is not None:
            warnings.append(f"Same content as import #{previous.pk} of {previous.started_at:%Y-%m-%d %H:%M}.")
    finally:
        staging.drop_tables()
        vendor.drop_tables()
    _finish(run, issues, warnings, source)
    if run.status == ImportRun.Status.SUCCEEDED:
        refresh = metrics_services.dates_to_refresh(
            partner=partner, affected_from=run.affected_from, affected_to=run.affected_to
        )
        recompute_enqueue(
            partner=partner, dates=refresh, trigger=Trigger.IMPORT, on_failure=lambda: _recompute_not_queued(run)
        )
    return run


def _recompute_not_queued(run: ImportRun) -> None:
    """The import stands; its page and the data status page say its metrics are delayed."""
    run.warnings = [*run.warnings, RECOMPUTE_NOT_QUEUED]
    run.save(update_fields=["warnings"])


def _finish(run: ImportRun, issues: IssueList, warnings: list[str], source: ImportSource) -> None:
    run.sha256 = source.sha256
    run.errors = [issue.as_dict() for issue in issues.sorted()]
    run.error_count = issues.total
    run.warnings = [storable(warning) for warning in warnings]  # they name files: any text
    run.finished_at = timezone.now()
    run.save()


def _stage_check_apply(
    partner: Partner, source: ImportSource, issues: IssueList, warnings: list[str], progress: Progress | None
) -> tuple[dict[str, dict[str, int]], tuple[dt.date | None, dt.date | None]]:
    for problem in source.problems:
        issues.add(problem)
    if issues:
        raise ImportRejected(issues)
    found = recognise.recognise(source, warnings, issues)
    staging.create_tables()
    vendor.create_tables()
    for spec in files.FILE_SPECS:
        if spec.name in found.canonical:
            _stage_file(source, found.canonical[spec.name], spec, issues, progress)
    vendor.stage_vendor_files(
        partner_id=partner.pk,
        source=source,
        vendor_files=found.vendor,
        issues=issues,
        warnings=warnings,
        progress=progress,
    )
    checks.run_checks(partner_id=partner.pk, issues=issues)
    if issues:
        raise ImportRejected(issues)
    # Rows per table, whichever files they came from; a canonical file is listed even when empty.
    staged = {spec.name: staging.count(spec) for spec in files.FILE_SPECS}
    rows = {name: count for name, count in staged.items() if count or name in found.canonical}
    counts = _apply(partner.pk, rows)
    vendor.apply_renewal_fields(partner_id=partner.pk)
    return counts, _affected_dates()


def _stage_file(
    source: ImportSource, source_file: SourceFile, spec: files.FileSpec, issues: IssueList, progress: Progress | None
) -> None:
    """Stages one canonical file: through COPY when it is written plainly (copy_csv), else, or
    when that fails, row by row."""
    with source.open_hashed(source_file) as stream:
        if not copy_csv.applies(spec):
            staging.load(spec, files.read_rows(spec, stream, issues), progress)
            return
        if copy_csv.stage_activity(stream, progress):
            return
    with source.open_again(source_file) as stream:
        staging.load(spec, files.read_rows(spec, stream, issues), progress)


def _apply(partner_id: int, rows: dict[str, int]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    upserts = {upsert.spec.name: upsert for upsert in apply.UPSERTS}
    for spec in files.FILE_SPECS:
        if spec.name not in rows:
            continue
        if spec is files.PRODUCTS:
            counts[spec.name] = _apply_products(partner_id, rows[spec.name])
        elif spec is files.ACTIVITY:
            counts[spec.name] = apply.apply_activity(partner_id=partner_id, rows=rows[spec.name])
        else:
            counts[spec.name] = apply.apply_upsert(upserts[spec.name], partner_id=partner_id, rows=rows[spec.name])
    if files.USERS.name in rows or files.SUBSCRIPTIONS.name in rows:
        apply.realign_assignments(partner_id=partner_id)
    _refresh_statistics(counts, upserts)
    return counts


# A large import can change a table's size many times over; the planner must know before the
# recompute that follows it (stale statistics turned a 0.5 s statement into minutes).
ANALYZE_ABOVE_ROWS = 10_000


def _refresh_statistics(counts: dict[str, dict[str, int]], upserts: dict[str, apply.Upsert]) -> None:
    """ANALYZE (PostgreSQL) the live tables an import grew by many rows; it runs in the
    import's transaction, so the new statistics appear with the data."""
    if connection.vendor != "postgresql":
        return
    tables = {files.ACTIVITY.name: Activity._meta.db_table} | {name: u.table for name, u in upserts.items()}
    with connection.cursor() as cursor:
        for name, counted in counts.items():
            if counted.get("created", 0) >= ANALYZE_ABOVE_ROWS and name in tables:
                cursor.execute(f"ANALYZE {tables[name]}")


def _apply_products(partner_id: int, rows: int) -> dict[str, int]:
    """Products are a short catalog: compared and written row by row, workloads included."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sku, name, family, workloads FROM import_stage_products ORDER BY file, line")
        staged = cursor.fetchall()
    stored = {p.sku: p for p in Product.objects.filter(partner_id=partner_id).prefetch_related("workloads")}
    created = updated = 0
    for sku, name, family, workloads in staged:
        wanted = sorted(workloads.split()) if workloads else []
        product = stored.get(sku)
        if product is not None and (product.name, product.family, product.workload_list) == (name, family, wanted):
            continue
        if product is None:
            product = Product.objects.create(partner_id=partner_id, sku=sku, name=name, family=family)
            created += 1
        else:
            Product.objects.filter(pk=product.pk).update(name=name, family=family)
            product.workloads.all().delete()
            updated += 1
        ProductWorkload.objects.bulk_create(ProductWorkload(product=product, workload=w) for w in wanted)
    apply.repoint_subscriptions(partner_id=partner_id)
    return {"rows": rows, "created": created, "updated": updated, "unchanged": rows - created - updated}


def _affected_dates() -> tuple[dt.date | None, dt.date | None]:
    with connection.cursor() as cursor:
        cursor.execute(apply.AFFECTED_DATES)
        # SQLite hands dates of raw queries back as text.
        first, last = (dt.date.fromisoformat(d) if isinstance(d, str) else d for d in cursor.fetchone())
        return first, last
