"""The import service: stream every file into staging, check it all, then write it all.

1. each file streams through `files.read_rows` (cell checks) into a temporary staging table
   (a plainly written activity.csv goes straight through COPY on PostgreSQL: `copy_csv`);
   vendor exports, recognised by their content, are read and converted into the same tables
   (`vendor`);
2. `checks.run_checks` looks for duplicates and unknown or crossing references, in SQL;
3. only when nothing is wrong, `apply` upserts the staged rows into the live tables.
All of it runs in one transaction under a per-partner lock: one bad row and nothing is written.
A run that succeeds is recorded in that same transaction, so it says "succeeded" exactly when
its rows are there.

Uploads (page and API) never run in a request: `import_upload` stores them and records a queued
run, which a worker starts (`import_run_claim`, `import_run_stored`, from imports/tasks.py). The
import_data command and the demo data run `data_import` in their own process.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Sequence

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from accounts.models import Partner, StaffUser
from core.db import partner_lock
from customers.models import Activity, Product, ProductWorkload
from imports import uploads
from imports.models import ImportPhase, ImportRun, ImportStatus
from imports.pipeline import apply, checks, copy_csv, files, recognise, staging, vendor
from imports.pipeline.issues import ImportIssue, ImportRejected, IssueList, storable
from imports.pipeline.progress import Progress
from imports.pipeline.sources import ImportSource, SourceFile, UnreadableFile, upload_name
from imports.progress import Tracker, live
from metrics import services as metrics_services
from metrics.models import Trigger
from metrics.tasks import RECOMPUTE_NOT_QUEUED, recompute_enqueue

logger = logging.getLogger(__name__)

NOT_QUEUED = (
    "The import could not be queued: the task queue is unreachable. The upload is kept: start it again "
    "when the queue is back."
)
UPLOAD_MISSING = "The stored upload is gone ({names}); nothing was imported. Upload the files again."


def data_import(
    *,
    partner: Partner,
    source: ImportSource,
    origin: str,
    started_by: StaffUser | None = None,
    progress: Progress | None = None,
    recompute: bool = True,
) -> ImportRun:
    """Imports `source` for `partner` in this process (the import_data command, the demo data, a
    pull from the vendor's APIs) and returns the recorded run (succeeded or failed). Without
    `recompute` the caller queues the recompute of the dates it touched (a pull: once, for all)."""
    run = ImportRun.objects.create(
        partner=partner,
        origin=origin,
        started_by=started_by,
        source_name=storable(source.name)[:500],
        status=ImportStatus.RUNNING,
        phase=ImportPhase.WAITING,
        heartbeat_at=timezone.now(),
        attempts=1,
    )
    return _execute(run, source, progress, recompute=recompute)


def import_upload(*, partner: Partner, files: Sequence[UploadedFile], origin: str, started_by: StaffUser) -> ImportRun:
    """Stores an upload (the page's files or the API's .zip) and records its run, queued; the
    caller queues it (`imports.tasks.import_enqueue`). Nothing of it is read here."""
    names = ", ".join(upload_name(upload) for upload in files)
    with transaction.atomic():  # no run without its stored upload
        run = ImportRun.objects.create(
            partner=partner, origin=origin, started_by=started_by, source_name=storable(names)[:500], attempts=1
        )
        try:
            run.upload_files, run.sha256 = uploads.store(run, files)
        except BaseException:
            uploads.remove(run)  # what was stored of it
            raise
        run.heartbeat_at = timezone.now()  # when it was queued
        run.save(update_fields=["upload_files", "sha256", "heartbeat_at"])
    logger.info(
        "Import %s queued: %d file(s), %d bytes",
        run.pk,
        len(run.upload_files),
        run.upload_bytes,
        extra={"run_id": run.pk, "partner_id": partner.pk, "origin": origin, "bytes": run.upload_bytes},
    )
    return run


def import_not_queued(*, run: ImportRun) -> None:
    """The queue could not take the run: it fails saying so, its upload kept for a new start."""
    with scopes_disabled():
        failed = ImportRun.objects.filter(pk=run.pk, status=ImportStatus.QUEUED, attempts=run.attempts).update(
            status=ImportStatus.FAILED, failure_reason=NOT_QUEUED, finished_at=timezone.now()
        )
    if failed:
        logger.error("Import %s could not be queued", run.pk, extra={"run_id": run.pk, "partner_id": run.partner_id})


def import_restartable(run: ImportRun) -> bool:
    """Whether the run may be started again from its stored upload: it failed, or it has waited
    in the queue or been silent for IMPORT_STALE_SECONDS (its message lost, its worker dead)."""
    if not run.has_upload:
        return False
    if run.status == ImportStatus.FAILED:
        return True
    return run.status in (ImportStatus.QUEUED, ImportStatus.RUNNING) and _stale(run, timezone.now())


def import_restart(*, run: ImportRun) -> ImportRun:
    """Queues the run again from its stored upload, as its next attempt (a message of an
    earlier attempt is then ignored); the caller queues it. Raises ValueError when it may not."""
    with transaction.atomic():
        run = ImportRun.objects.select_for_update().get(pk=run.pk)
        if not import_restartable(run):
            raise ValueError("This import cannot be started again.")
        run.status, run.phase, run.attempts = ImportStatus.QUEUED, ImportPhase.QUEUED, run.attempts + 1
        run.heartbeat_at, run.finished_at = timezone.now(), None
        run.failure_reason, run.errors, run.error_count, run.warnings, run.counts = "", [], 0, [], {}
        run.rows_read = run.files_done = run.files_total = 0
        run.affected_from = run.affected_to = None
        run.save()
    logger.info("Import %s queued again (attempt %d)", run.pk, run.attempts, extra=_fields(run))
    return run


def import_run_claim(*, run_id: int, attempt: int) -> ImportRun | None:
    """Marks a queued run as running, for this attempt; None when it is not (any more) this
    attempt's to run: started again, swept, or run already."""
    with scopes_disabled():
        claimed = ImportRun.objects.filter(pk=run_id, status=ImportStatus.QUEUED, attempts=attempt).update(
            status=ImportStatus.RUNNING, phase=ImportPhase.WAITING, heartbeat_at=timezone.now()
        )
        return ImportRun.objects.select_related("partner").get(pk=run_id) if claimed else None


def import_run_stored(*, run: ImportRun) -> ImportRun:
    """Runs a claimed run from its stored upload (in the worker)."""
    try:
        gone = uploads.missing(run)
        source = uploads.source(run)
    except OSError as error:  # the storage itself (a full or unmounted volume, permissions)
        return _fail(run, f"The stored upload could not be read ({type(error).__name__}); start it again later.")
    if gone:
        return _fail(run, UPLOAD_MISSING.format(names=", ".join(gone)))
    return _execute(run, source, None)


def import_run_timed_out(*, run_id: int, minutes: int) -> None:
    """A run stopped by its time limit: it says so (its transaction was rolled back)."""
    reason = (
        f"The import took longer than its limit of {minutes} minutes and was stopped; nothing was written. "
        "Split the data into smaller imports, or ask the operator to raise IMPORT_TIME_LIMIT_MINUTES."
    )
    with scopes_disabled():
        ImportRun.objects.filter(pk=run_id).update(failure_reason=reason)


def imports_sweep(*, now: dt.datetime | None = None) -> int:
    """Fails the runs whose process stopped: running with no heartbeat for IMPORT_STALE_SECONDS,
    or queued for longer than IMPORT_QUEUE_EXPIRES_HOURS (the task expired unread). Returns how
    many it failed."""
    now = now or timezone.now()
    failed = 0
    with scopes_disabled():
        unfinished = ImportRun.objects.filter(status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING])
        for run in unfinished.select_related("partner"):
            reason = _why_stopped(run, now)
            if reason is None:
                continue
            last = live(run)  # where it stopped
            updated = ImportRun.objects.filter(pk=run.pk, status=run.status, attempts=run.attempts).update(
                status=ImportStatus.FAILED,
                failure_reason=reason,
                finished_at=now,
                phase=last.phase,
                rows_read=last.rows_read,
                files_done=last.files_done,
                files_total=last.files_total,
                heartbeat_at=last.heartbeat_at,
            )
            if updated:
                failed += 1
                logger.error("Import %s failed: %s", run.pk, reason, extra=_fields(run))
    return failed


def _why_stopped(run: ImportRun, now: dt.datetime) -> str | None:
    again = "Start it again." if run.has_upload else "Run the import again."
    if run.status == ImportStatus.QUEUED:
        queued_at = run.heartbeat_at or run.started_at
        hours = settings.IMPORT_QUEUE_EXPIRES_HOURS
        if now - queued_at < dt.timedelta(hours=hours):
            return None
        return f"No worker started this import within {hours} hours (is a worker consuming the imports queue?). {again}"
    if not _stale(run, now):
        return None
    beat = live(run).heartbeat_at or run.started_at
    who = "worker" if run.origin != ImportRun.Origin.COMMAND else "process"
    return (
        f"The {who} running this import stopped (no sign of life since {beat:%Y-%m-%d %H:%M:%S} UTC); "
        f"nothing was written. {again}"
    )


def _stale(run: ImportRun, now: dt.datetime) -> bool:
    beat = live(run).heartbeat_at or run.started_at
    return now - beat > dt.timedelta(seconds=settings.IMPORT_STALE_SECONDS)


def imports_remove_old_uploads(*, now: dt.datetime | None = None) -> int:
    """Deletes the stored uploads older than IMPORT_UPLOAD_RETENTION_DAYS of runs that are not
    running; each run says when. Returns how many it removed."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.IMPORT_UPLOAD_RETENTION_DAYS)
    removed = 0
    with scopes_disabled():
        old = ImportRun.objects.filter(upload_removed_at=None, started_at__lt=cutoff).exclude(
            status=ImportStatus.RUNNING
        )
        for run in old.exclude(upload_files=[]):
            uploads.remove(run)
            ImportRun.objects.filter(pk=run.pk).update(upload_removed_at=now)
            removed += 1
            logger.info("Import %s: its stored upload was removed", run.pk, extra=_fields(run))
    return removed


def _fields(run: ImportRun) -> dict[str, object]:
    return {"run_id": run.pk, "partner_id": run.partner_id, "origin": run.origin, "attempt": run.attempts}


def _fail(run: ImportRun, reason: str) -> ImportRun:
    run.status, run.failure_reason, run.finished_at = ImportStatus.FAILED, reason, timezone.now()
    run.save()
    logger.error("Import %s failed: %s", run.pk, reason, extra=_fields(run))
    return run


def _execute(run: ImportRun, source: ImportSource, progress: Progress | None, *, recompute: bool = True) -> ImportRun:
    """Runs the import of a started run, tracked, and records its outcome."""
    partner = run.partner
    issues = IssueList()
    warnings: list[str] = []
    with Tracker(run, progress) as tracker:
        logger.info("Import %s started", run.pk, extra=tracker.log_fields())
        try:
            with transaction.atomic():
                partner_lock("import", partner.pk)
                tracker.enter(ImportPhase.READING)
                counts, affected = _stage_check_apply(partner, source, issues, warnings, tracker)
                _succeed(run, counts, affected, warnings, source, tracker)
        except ImportRejected:
            run.status = ImportStatus.FAILED
        except UnreadableFile as error:  # a damaged archive entry, found while reading it
            issues.add(error.issue)
            run.status = ImportStatus.FAILED
        except Exception as error:
            logger.error(
                "Import %s failed unexpectedly (%s)",
                run.pk,
                type(error).__name__,
                extra=tracker.log_fields(error=type(error).__name__, traceback=_frames(error)),
            )
            run.status, run.counts, run.affected_from, run.affected_to = ImportStatus.FAILED, {}, None, None
            issues.add(ImportIssue(source.name, 0, "-", "unexpected error while importing; nothing was written"))
            _record(run, issues, warnings, source, tracker)
            raise
        finally:
            staging.drop_tables()
            vendor.drop_tables()
        if run.status == ImportStatus.FAILED:
            _record(run, issues, warnings, source, tracker)
        else:
            _queue_recompute(run, tracker, queue=recompute)
        logger.info(
            "Import %s %s in %.1f s",
            run.pk,
            run.status,
            tracker.seconds,
            extra=tracker.log_fields(
                status=run.status,
                seconds=round(tracker.seconds, 3),
                errors=run.error_count,
                **{f"rows_{key}": value for key, value in run.totals.items()},
            ),
        )
    return run


def _frames(error: BaseException) -> str:
    """Where an error happened, without its message (which may quote the data)."""
    return "".join(traceback.format_tb(error.__traceback__))


def _succeed(
    run: ImportRun,
    counts: dict[str, dict[str, int]],
    affected: tuple[dt.date | None, dt.date | None],
    warnings: list[str],
    source: ImportSource,
    tracker: Tracker,
) -> None:
    """Records the success inside the import's transaction, so it commits with the rows."""
    run.status = ImportStatus.SUCCEEDED
    run.counts = counts
    run.affected_from, run.affected_to = affected
    sha256 = run.sha256 or source.sha256
    previous = (
        ImportRun.objects.filter(partner=run.partner, sha256=sha256, status=ImportStatus.SUCCEEDED)
        .exclude(pk=run.pk)
        .first()
    )
    if previous is not None:
        warnings.append(f"Same content as import #{previous.pk} of {previous.started_at:%Y-%m-%d %H:%M}.")
    _record(run, IssueList(), warnings, source, tracker, phase=ImportPhase.RECOMPUTE)


def _queue_recompute(run: ImportRun, tracker: Tracker, *, queue: bool) -> None:
    tracker.enter(ImportPhase.RECOMPUTE)  # writing took until the commit (deferred checks included)
    if queue:
        refresh = metrics_services.dates_to_refresh(
            partner=run.partner, affected_from=run.affected_from, affected_to=run.affected_to
        )
        recompute_enqueue(
            partner=run.partner, dates=refresh, trigger=Trigger.IMPORT, on_failure=lambda: _recompute_not_queued(run)
        )
    tracker.enter(ImportPhase.DONE)
    run.phase = ImportPhase.DONE
    run.save(update_fields=["phase"])


def _recompute_not_queued(run: ImportRun) -> None:
    """The import stands; its page and the data status page say its metrics are delayed."""
    run.warnings = [*run.warnings, RECOMPUTE_NOT_QUEUED]
    run.save(update_fields=["warnings"])


def _record(
    run: ImportRun,
    issues: IssueList,
    warnings: list[str],
    source: ImportSource,
    tracker: Tracker,
    phase: ImportPhase | None = None,
) -> None:
    run.sha256 = run.sha256 or source.sha256
    run.errors = [issue.as_dict() for issue in issues.sorted()]
    run.error_count = issues.total
    run.warnings = [storable(warning) for warning in warnings]  # they name files: any text
    run.finished_at = timezone.now()
    tracker.store_on(run)
    run.phase = phase or run.phase
    run.save()


def _stage_check_apply(
    partner: Partner, source: ImportSource, issues: IssueList, warnings: list[str], tracker: Tracker
) -> tuple[dict[str, dict[str, int]], tuple[dt.date | None, dt.date | None]]:
    for problem in source.problems:
        issues.add(problem)
    if issues:
        raise ImportRejected(issues)
    found = recognise.recognise(source, warnings, issues)
    tracker.files(len(found.canonical) + len(found.vendor))
    staging.create_tables()
    vendor.create_tables()
    for spec in files.FILE_SPECS:
        if spec.name in found.canonical:
            _stage_file(source, found.canonical[spec.name], spec, issues, tracker)
            tracker.file_done(spec.name)
    vendor.stage_vendor_files(
        partner_id=partner.pk,
        source=source,
        vendor_files=found.vendor,
        issues=issues,
        warnings=warnings,
        progress=tracker,
    )
    tracker.enter(ImportPhase.CHECKING)
    checks.run_checks(partner_id=partner.pk, issues=issues)
    if issues:
        raise ImportRejected(issues)
    tracker.enter(ImportPhase.WRITING)
    # Rows per table, whichever files they came from; a canonical file is listed even when empty.
    staged = {spec.name: staging.count(spec) for spec in files.FILE_SPECS}
    rows = {name: count for name, count in staged.items() if count or name in found.canonical}
    counts = _apply(partner.pk, rows)
    vendor.apply_renewal_fields(partner_id=partner.pk)
    return counts, _affected_dates()


def _stage_file(
    source: ImportSource, source_file: SourceFile, spec: files.FileSpec, issues: IssueList, progress: Progress
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
