"""Collecting a partner's data from the vendor's APIs (SPEC §9): its connection, its test, the pull.

A pull reads the partner portal's customer list, then, customer by customer, its subscriptions,
its tenant's subscribed SKUs and one active-user report per day not pulled yet, into a folder laid
out as vendor exports are (vendor-formats.md §0). Each customer's folder goes through the same
import pipeline as uploaded files, in an import of its own: all or nothing per customer, so one
customer's failure never stops the others and never changes that customer's stored data. Downloads
run side by side in threads (the report API is paced per tenant); every database write happens in
the pull's own thread, one customer after another. The dates the pull touched are recomputed once.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from accounts.models import Partner, StaffUser
from collection import encryption
from collection.models import CustomerSync, PullRun, PullStatus, PullTrigger, VendorConnection
from collection.vendor import Credentials, Endpoints, ErrorKind, Rate, Report, VendorClient, VendorError, tenant_of
from customers.models import Customer
from imports.models import ImportOrigin, ImportStatus
from imports.pipeline.sources import source_from_path
from imports.pipeline.vendor_report import CONCEALED
from imports.services import data_import
from metrics import services as metrics_services
from metrics.definitions import WINDOW_DAYS
from metrics.models import Trigger
from metrics.tasks import recompute_enqueue

logger = logging.getLogger(__name__)

REPORT_FILE = "ActiveUserDetail_{day}.csv"
STALE_PULL = dt.timedelta(minutes=30)  # a running pull without a heartbeat this long has stopped
HEARTBEAT = dt.timedelta(minutes=1)  # how often a running pull says it is alive
RECOMPUTE_EVERY = 3600.0  # seconds: a long pull queues the recompute of what it imported this often
TENANT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class NotConnected(Exception):
    """The partner has no connection to the vendor's APIs (or its secret cannot be read)."""


# --- the connection ----------------------------------------------------------------------------


def connection_save(
    *, partner: Partner, tenant_id: str, client_id: str, secret: str | None, by: StaffUser | None
) -> VendorConnection:
    """Stores the partner's app registration; `secret` None keeps the stored one. The secret is
    encrypted at once and never kept in clear."""
    connection = VendorConnection.objects.filter(partner=partner).first()
    if connection is None:
        if not secret:
            raise ValueError("A new connection needs its client secret.")
        connection = VendorConnection(partner=partner)
    connection.tenant_id, connection.client_id = tenant_id.strip(), client_id.strip()
    if secret:
        connection.encrypted_secret = encryption.encrypt(secret)
    connection.updated_at, connection.updated_by = timezone.now(), by
    connection.tested_at, connection.test_result = None, []  # the old test said nothing of these credentials
    connection.save()
    logger.info("Vendor connection of partner %s saved", partner.pk, extra={"partner_id": partner.pk})
    return connection


def connection_keys_rotate() -> int:
    """Encrypts every stored secret again with the first of CONNECTION_KEYS; returns how many."""
    count = 0
    with transaction.atomic():
        for connection in VendorConnection.objects.select_for_update().only("pk", "encrypted_secret"):
            VendorConnection.objects.filter(pk=connection.pk).update(
                encrypted_secret=encryption.rotate(connection.encrypted_secret)
            )
            count += 1
    return count


def connection_delete(*, partner: Partner) -> None:
    VendorConnection.objects.filter(partner=partner).delete()


def vendor_client(connection: VendorConnection, *, interactive: bool = False) -> VendorClient:
    """A client with the connection's credentials and the configured endpoints and pace.
    `interactive`: for a person waiting on a page (the connection test), no retries, no waiting
    on throttling, and short timeouts, so it answers well within the web server's timeout."""
    try:
        secret = encryption.decrypt(connection.encrypted_secret)
    except encryption.SecretUnreadable as error:
        raise NotConnected(str(error)) from None
    patience: dict[str, Any] = (
        {"retry_budget": 0, "max_wait": 0.0, "timeout": (3.0, 8.0)}
        if interactive
        else {"retry_budget": settings.VENDOR_RETRY_BUDGET}
    )
    return VendorClient(
        Credentials(connection.tenant_id, connection.client_id, secret),
        endpoints(),
        report_rate=Rate.parse(settings.VENDOR_REPORT_RATE),
        **patience,
    )


def endpoints() -> Endpoints:
    return Endpoints(
        login=settings.VENDOR_LOGIN_URL,
        partner_center=settings.VENDOR_PARTNER_CENTER_URL,
        graph=settings.VENDOR_GRAPH_URL,
        ca_bundle=settings.VENDOR_CA_BUNDLE,
    )


@dataclass(frozen=True)
class Check:
    """One line of a connection test: what was tried, whether it worked, in plain words."""

    check: str
    ok: bool
    message: str


def connection_test(*, partner: Partner) -> list[Check]:
    """Tries the connection as a pull would, and says in plain words what works: the partner
    portal's token, its customer list, and a sample customer's directory. Stops at the first
    failure (what follows depends on it). The result is stored on the connection."""
    connection = VendorConnection.objects.filter(partner=partner).first()
    if connection is None:
        return [Check("connection", False, "No connection is set up yet.")]
    checks: list[Check] = []
    try:
        with (
            _client(connection, interactive=True) as client,
            tempfile.TemporaryDirectory(prefix="vendor-test-") as folder,
        ):
            client.check_partner_token()
            checks.append(Check("token", True, "The partner portal accepted the app's credentials."))
            tenants = client.write_customers(Path(folder) / "customers.json", first_page_only=True)
            listed = f"{len(tenants)} customers" + (" on its first page" if client.more_customers else "")
            checks.append(Check("customers", True, f"The partner portal listed {listed}."))
            if tenants:
                skus = client.write_subscribed_skus(tenants[0], Path(folder) / "skus.json")
                checks.append(
                    Check("directory", True, f"The directory of customer {tenants[0]} answered: {skus} SKUs.")
                )
    except (VendorError, NotConnected) as error:
        step = ("token", "customers", "directory")[min(len(checks), 2)]
        checks.append(Check(step, False, error.message if isinstance(error, VendorError) else str(error)))
    VendorConnection.objects.filter(pk=connection.pk).update(
        tested_at=timezone.now(), test_result=[check.__dict__ for check in checks]
    )
    return checks


@contextmanager
def _client(connection: VendorConnection, *, interactive: bool = False) -> Iterator[VendorClient]:
    client = vendor_client(connection, interactive=interactive)
    try:
        yield client
    finally:
        client.close()


# --- the pull ----------------------------------------------------------------------------------


def yesterday_utc() -> dt.date:
    """The report API keeps its days in UTC (docs/collection.md): its yesterday, whatever TIME_ZONE."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def days_to_pull(last_pulled: dt.date | None, *, until: dt.date) -> list[dt.date]:
    """From the day after the last one pulled (first pull: the window of WINDOW_DAYS ending
    `until`) up to `until`, never older than the window (the API keeps no more)."""
    first = until - dt.timedelta(days=WINDOW_DAYS - 1)
    if last_pulled is not None:
        first = max(first, last_pulled + dt.timedelta(days=1))
    return [first + dt.timedelta(days=n) for n in range((until - first).days + 1)]


@dataclass
class Download:
    """One customer's answers, on disk, ready to import (or the error that stopped them)."""

    tenant_id: str
    folder: Path
    reports: list[Report] = field(default_factory=list)
    subscriptions: int = 0
    skus: int = 0
    concealed: bool = False  # the last report's user names are 32-hex hashes
    error: VendorError | None = None


def pull_start(*, partner: Partner, trigger: PullTrigger, customer: str = "") -> PullRun | None:
    """Claims a pull: None when another pull of the partner is running, or when tonight's
    nightly pull is claimed already (the database's unique constraints decide, whatever races)."""
    pulls_sweep()  # a pull whose worker stopped no longer blocks the next
    night = yesterday_utc() if trigger == PullTrigger.NIGHTLY else None
    try:
        with transaction.atomic():
            return PullRun.objects.create(partner=partner, trigger=trigger, night=night, customer_tenant_id=customer)
    except IntegrityError:
        logger.info(
            "Partner %s: a pull is running or tonight's is claimed already",
            partner.pk,
            extra={"partner_id": partner.pk},
        )
        return None


def pull_claim(*, run_id: int) -> PullRun | None:
    """Takes a queued pull for this worker, once: None when another worker took it or it has
    ended (a redelivered task pulls nothing twice). Read across partners: the task learns its
    partner from the run."""
    now = timezone.now()
    with scopes_disabled():
        waiting = PullRun.objects.filter(pk=run_id, status=PullStatus.RUNNING, claimed_at__isnull=True)
        if not waiting.update(claimed_at=now, heartbeat_at=now):
            return None
        return PullRun.objects.select_related("partner").get(pk=run_id)


def connected_partners() -> list[Partner]:
    """The partners with a connection, for the nightly pull (read across partners)."""
    with scopes_disabled():
        return list(Partner.objects.filter(pk__in=VendorConnection.objects.values("partner")).order_by("pk"))


def vendor_pull(*, run: PullRun) -> PullRun:
    """Runs a claimed pull to its end and records it; then queues the recompute of the dates its
    imports touched. One customer's failure is recorded on its CustomerSync and the pull goes on."""
    partner = run.partner
    connection = VendorConnection.objects.filter(partner=partner).first()
    if connection is None:
        return _pull_failed(run, ErrorKind.CREDENTIALS_REFUSED, "No connection to the vendor's APIs is set up.")
    touched: list[tuple[dt.date, dt.date]] = []
    recomputed_at = time.monotonic()
    failure: tuple[ErrorKind, str] | None = None
    try:
        with _client(connection) as client, tempfile.TemporaryDirectory(prefix="vendor-pull-") as scratch:
            customers = _customer_list(client, Path(scratch), only=run.customer_tenant_id)
            run.customers_total = len(customers)
            run.save(update_fields=["customers_total"])
            for download in _downloads(client, customers, Path(scratch), run):
                if download.error is not None and download.error.kind == ErrorKind.CREDENTIALS_REFUSED:
                    raise download.error  # the partner's own credentials (e.g. the secret expired mid-pull): once
                touched += _import_customer(run, download, customers[download.tenant_id])
                _record_stats(run, client)
                if touched and time.monotonic() - recomputed_at > RECOMPUTE_EVERY:  # a long first pull
                    _recompute(partner, touched)
                    touched, recomputed_at = [], time.monotonic()
    except NotConnected as error:
        failure = (ErrorKind.CREDENTIALS_REFUSED, str(error))
    except VendorError as error:
        failure = (error.kind, error.message)
    except SoftTimeLimitExceeded:
        failure = (ErrorKind.UNAVAILABLE, "The pull reached its time limit; the next pull goes on where it stopped.")
    _recompute(partner, touched)  # what was imported before a failure stands, and is computed
    if failure is not None:
        return _pull_failed(run, *failure)
    run.status = PullStatus.PARTIAL if run.customers_failed else PullStatus.SUCCEEDED
    run.finished_at = timezone.now()
    if not _save_if_running(run):
        return run
    logger.info(
        "Pull %s of partner %s %s: %d customers, %d failed",
        run.pk,
        partner.pk,
        run.status,
        run.customers_done,
        run.customers_failed,
        extra=_fields(run),
    )
    return run


def _customer_list(client: VendorClient, scratch: Path, *, only: str) -> dict[str, dict[str, Any]]:
    """The partner portal's customers by tenant id (one customer when `only` names it)."""
    path = scratch / "customers.json"
    client.write_customers(path)
    with path.open(encoding="utf-8") as file:
        items = json.load(file).get("items", [])  # a page at a time on the wire; ~1 kB per customer here
    # a tenant id names folders and URLs: only GUIDs (the directory's form) are taken
    customers = {tenant_of(item): item for item in items if TENANT_ID.fullmatch(tenant_of(item))}
    if skipped := len(items) - len(customers):
        logger.warning("%d customers of the partner portal skipped (no directory tenant id, or listed twice)", skipped)
    if only:
        if only not in customers:
            raise VendorError(ErrorKind.TENANT_GONE, f"{only} is not among the partner portal's customers.")
        customers = {only: customers[only]}
    return customers


def _downloads(
    client: VendorClient, customers: dict[str, dict[str, Any]], scratch: Path, run: PullRun
) -> Iterator[Download]:
    """Each customer's answers as they complete, downloaded side by side (at most twice the
    concurrency in flight, so the scratch folder stays small). While it waits, the pull's
    heartbeat goes on, so a customer paced or throttled for long never makes it look stopped."""
    last_days = dict(CustomerSync.objects.filter(partner=run.partner).values_list("tenant_id", "last_report_day"))
    until = yesterday_utc()
    pending = iter(customers)
    workers = max(settings.VENDOR_PULL_CONCURRENCY, 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vendor-pull") as pool:
        running: set[Future[Download]] = set()
        while True:
            while len(running) < 2 * workers and (tenant := next(pending, None)) is not None:
                days = days_to_pull(last_days.get(tenant), until=until)
                running.add(pool.submit(_download, client, tenant, customers[tenant], scratch / tenant, days))
            if not running:
                return
            done, running = wait(running, timeout=HEARTBEAT.total_seconds(), return_when=FIRST_COMPLETED)
            if not done:  # a minute without a customer done (each one done beats too)
                PullRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
            for future in done:
                yield future.result()


def _download(client: VendorClient, tenant: str, item: dict[str, Any], folder: Path, days: list[dt.date]) -> Download:
    """Runs in a worker thread: HTTP and files only, never the database."""
    customer_folder = folder / tenant
    customer_folder.mkdir(parents=True)
    download = Download(tenant, folder)
    try:
        (folder / "customers.json").write_text(json.dumps({"totalCount": 1, "items": [item]}), encoding="utf-8")
        download.subscriptions = client.write_subscriptions(tenant, customer_folder / "subscriptions.json")
        download.skus = client.write_subscribed_skus(tenant, customer_folder / "subscribedSkus.json")
        for day in days:
            report = client.write_activity_report(tenant, day, customer_folder / REPORT_FILE.format(day=day))
            if not report.rows:  # not there yet: asked again at the next pull, with the days after it
                report.path.unlink(missing_ok=True)
                break
            download.reports.append(report)
        download.concealed = bool(download.reports) and _concealed(download.reports[-1].path)
    except VendorError as error:
        download.error = error
    except (UnicodeDecodeError, csv.Error) as error:  # a report the client could not even count
        download.error = VendorError(
            ErrorKind.MALFORMED, f"The answers of customer {tenant} could not be read ({type(error).__name__})."
        )
    except Exception as error:  # a full disk, an answer of an unforeseen shape: this customer's alone
        logger.warning("Customer %s: download failed (%s)", tenant, type(error).__name__, exc_info=True)
        download.error = VendorError(
            ErrorKind.UNAVAILABLE,
            f"The answers of customer {tenant} could not be stored ({type(error).__name__}: "
            f"{str(error)[:200]}); it is asked again at the next pull.",
        )
    finally:
        client.forget(tenant)
    return download


def _import_customer(run: PullRun, download: Download, item: dict[str, Any]) -> list[tuple[dt.date, dt.date]]:
    """Imports one customer's folder (all or nothing) and records where its collection stands;
    returns the dates the import touched."""
    partner, now = run.partner, timezone.now()
    sync, _ = CustomerSync.objects.get_or_create(partner=partner, tenant_id=download.tenant_id)
    sync.name = str((item.get("companyProfile") or {}).get("companyName") or sync.name)[:300]
    sync.last_attempt_at = now
    touched: list[tuple[dt.date, dt.date]] = []
    error = download.error
    if error is None:
        imported = data_import(
            partner=partner,
            source=source_from_path(download.folder),
            origin=ImportOrigin.COLLECTION,
            recompute=False,
        )
        if imported.status == ImportStatus.SUCCEEDED:
            if imported.affected_from and imported.affected_to:
                touched.append((imported.affected_from, imported.affected_to))
            _succeeded(sync, download, imported.pk, imported.totals, now)
        else:
            first = imported.errors[0] if imported.errors else {}
            error = VendorError(
                ErrorKind.MALFORMED,
                f"The answers could not be imported ({imported.error_count} problem(s), e.g. "
                f"{first.get('file', '?')}: {first.get('reason', '?')}); see import #{imported.pk}.",
            )
    if error is not None:
        sync.error_kind, sync.error, sync.failures = error.kind, error.message, sync.failures + 1
        run.customers_failed += 1
        logger.warning("Pull %s: customer %s failed (%s)", run.pk, download.tenant_id, error.kind, extra=_fields(run))
    sync.customer = Customer.objects.filter(partner=partner, external_id=download.tenant_id).first()
    sync.save()
    run.customers_done += 1
    run.heartbeat_at = timezone.now()
    shutil.rmtree(download.folder, ignore_errors=True)
    return touched


def _succeeded(sync: CustomerSync, download: Download, run_id: int, totals: dict[str, int], now: dt.datetime) -> None:
    days = [report.day for report in download.reports]
    if days:
        sync.last_report_day = max(days)
        sync.concealed_names = download.concealed
    sync.last_success_at, sync.error_kind, sync.error, sync.failures = now, "", "", 0
    sync.imported = {
        "import_run": run_id,
        "subscriptions": download.subscriptions,
        "skus": download.skus,
        "report_days": [day.isoformat() for day in days],
        "users": sum(report.rows for report in download.reports[-1:]),
        "rows": totals,
    }


def _concealed(path: Path) -> bool:
    """Whether a report's user names are concealed (32-hex hashes), by its first rows."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        rows = csv.DictReader(file)
        upns = [row.get("User Principal Name", "") for _, row in zip(range(50), rows, strict=False)]
    return bool(upns) and all(CONCEALED.fullmatch(upn) for upn in upns)


def _record_stats(run: PullRun, client: VendorClient) -> None:
    stats = client.stats
    run.requests, run.retries, run.throttled = stats.requests, stats.retries, stats.throttled
    run.save(update_fields=["customers_done", "customers_failed", "requests", "retries", "throttled", "heartbeat_at"])


def _recompute(partner: Partner, touched: list[tuple[dt.date, dt.date]]) -> None:
    """Queues one recompute of every published date that reads what the pull's imports touched."""
    if not touched:
        return
    first, last = min(start for start, _ in touched), max(end for _, end in touched)
    dates = metrics_services.dates_to_refresh(partner=partner, affected_from=first, affected_to=last)
    recompute_enqueue(partner=partner, dates=dates, trigger=Trigger.COLLECTION)


def _save_if_running(run: PullRun) -> bool:
    """Records how a pull ended, unless the sweeper ended it meanwhile (then it stays as swept)."""
    fields = {field.attname: getattr(run, field.attname) for field in PullRun._meta.concrete_fields}
    del fields["id"]
    saved = PullRun.objects.filter(pk=run.pk, status=PullStatus.RUNNING).update(**fields)
    if not saved:
        logger.warning("Pull %s was ended by the sweeper before it finished", run.pk, extra=_fields(run))
    return bool(saved)


def _pull_failed(run: PullRun, kind: ErrorKind, message: str) -> PullRun:
    run.status, run.error_kind, run.error, run.finished_at = PullStatus.FAILED, kind, message, timezone.now()
    if not _save_if_running(run):
        return run
    logger.error("Pull %s of partner %s failed (%s)", run.pk, run.partner_id, kind, extra=_fields(run))
    return run


def pull_not_queued(*, run: PullRun) -> PullRun:
    """A pull the task queue would not take: it ends at once, saying why."""
    return _pull_failed(run, ErrorKind.UNAVAILABLE, "The pull could not be queued (the task queue is unreachable).")


def _fields(run: PullRun) -> dict[str, object]:
    return {"pull_id": run.pk, "partner_id": run.partner_id, "trigger": run.trigger}


def pulls_sweep(*, now: dt.datetime | None = None) -> int:
    """Ends the pulls whose worker stopped (no heartbeat for STALE_PULL) as failed, of every partner."""
    cutoff = (now or timezone.now()) - STALE_PULL
    with scopes_disabled():
        return PullRun.objects.filter(status=PullStatus.RUNNING, heartbeat_at__lt=cutoff).update(
            status=PullStatus.FAILED,
            error_kind=ErrorKind.UNAVAILABLE,
            error="The worker running this pull stopped; the next pull continues where it left off.",
            finished_at=now or timezone.now(),
        )
