"""What the benchmark measures (bench/run.py is the command). Runs inside a set-up Django."""

from __future__ import annotations

import datetime as dt
import time
import tracemalloc
from pathlib import Path

from django.apps import apps
from django.db import connection, reset_queries, transaction
from django.db.models import Q, Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from accounts.models import Partner, StaffUser
from accounts.roles import Role
from accounts.services import partner_create, staff_create
from bench.run import (
    AS_OF,
    SLUG,
    TODAY,
    Figure,
    Scale,
    current_rss_mib,
    machine_facts,
    median_time,
    peak_rss_mib,
    temp_folder,
)
from customers.models import (
    INSIGHT_FAMILIES,
    Activity,
    Customer,
    LicenseAssignment,
    Product,
    ProductWorkload,
    Subscription,
)
from exports.portfolio import portfolio_lines
from imports.demo import DemoConfig, write_demo_files
from imports.models import ImportRun
from imports.pipeline.progress import Progress
from imports.pipeline.sources import source_from_path
from imports.services import data_import
from metrics import engine
from metrics.definitions import WINDOW_DAYS, assigns, counted, entitles, overlaps_window, shown_family
from metrics.models import Trigger
from metrics.services import date_range, metrics_recompute, metrics_recompute_dates

NAIVE_SAMPLE = 10  # customers the naive loop really runs on; the rest is extrapolated

# The floor: the SKU grain of one date in one hand-written statement, straight from the base
# tables (what any implementation must at least do: reduce the window's activity to users).
FLOOR_SKU_GRAIN = f"""
    INSERT INTO bench_floor (customer_id, product_id, sold, own_sold, assigned, entitled, active)
    WITH active_pairs AS (
        SELECT DISTINCT act.user_id, act.workload FROM customers_activity act
        WHERE act.partner_id = %(partner_id)s AND act.activity_date BETWEEN %(window_start)s AND %(as_of)s
    ),
    active_users AS (
        SELECT DISTINCT a.user_id, s.product_id
        FROM customers_licenseassignment a
        JOIN customers_subscription s ON s.id = a.subscription_id
        JOIN customers_productworkload pw ON pw.product_id = s.product_id
        JOIN active_pairs ap ON ap.user_id = a.user_id AND ap.workload = pw.workload
        WHERE a.partner_id = %(partner_id)s AND {overlaps_window("a")}
    ),
    holders AS (
        SELECT s.customer_id, s.product_id, a.user_id,
               SUM(CASE WHEN {assigns("a", "s")} THEN 1 ELSE 0 END) AS assigned,
               MAX(CASE WHEN {entitles("a", "s")} THEN 1 ELSE 0 END) AS entitled
        FROM customers_licenseassignment a
        JOIN customers_subscription s ON s.id = a.subscription_id
        JOIN customers_product pr ON pr.id = s.product_id AND {shown_family("pr")}
        WHERE a.partner_id = %(partner_id)s AND a.assigned_on <= %(as_of)s
        GROUP BY s.customer_id, s.product_id, a.user_id
    ),
    sold AS (
        SELECT s.customer_id, s.product_id, SUM(s.quantity) AS sold,
               SUM(CASE WHEN s.source = 'own' THEN s.quantity ELSE 0 END) AS own_sold
        FROM customers_subscription s WHERE s.partner_id = %(partner_id)s AND {counted("s")}
        GROUP BY s.customer_id, s.product_id
    )
    SELECT h.customer_id, h.product_id, MAX(COALESCE(sd.sold, 0)), MAX(COALESCE(sd.own_sold, 0)),
           SUM(h.assigned), SUM(h.entitled), COUNT(au.user_id)
    FROM holders h
    LEFT JOIN active_users au ON au.user_id = h.user_id AND au.product_id = h.product_id
    LEFT JOIN sold sd ON sd.customer_id = h.customer_id AND sd.product_id = h.product_id
    GROUP BY h.customer_id, h.product_id"""


def run_benchmark(*, scale: Scale, runs: int, seed: int, reuse: bool) -> tuple[list[Figure], dict[str, object]]:
    """Every figure of the benchmark at `scale`, the floor first, ratios to it filled in."""
    figures: list[Figure] = []
    with scopes_disabled():
        partner = _dataset(scale, seed, reuse, figures)
    facts = machine_facts() | {"scale": f"{scale.name}: {scale.customers:,} customers, {scale.users:,} users"}
    with scope(partner=partner):
        counts = _row_counts(partner)
        facts |= counts
        floor = median_time(lambda: _floor(partner), runs)
        figures.insert(0, Figure("floor: SKU grain, one INSERT … SELECT", floor, "s", "hand-written, same data"))
        recompute = median_time(
            lambda: metrics_recompute(partner=partner, as_of=AS_OF, trigger=Trigger.BENCHMARK), runs
        )
        figures.append(Figure("recompute one date, every grain", recompute, "s", floor_ratio=recompute / floor))
        naive = _naive_loop(partner) * counts["customers"] / NAIVE_SAMPLE
        note = f"extrapolated from {NAIVE_SAMPLE} customers"
        figures.append(Figure("naive per-customer ORM loop, SKU grain", naive, "s", note, naive / floor))
        figures += _backfill(partner, recompute)
        figures += _pages(partner, runs)
        figures += _export(partner, runs)
    figures += _large_export(scale.export_rows, runs)
    return figures, facts


def _dataset(scale: Scale, seed: int, reuse: bool, figures: list[Figure]) -> Partner:
    """The bench partner with the scale's data, generated and imported through the product."""
    partner = Partner.objects.filter(slug=SLUG).first()
    if reuse and partner is not None and Customer.objects.filter(partner=partner).count() == scale.customers:
        return partner
    _empty_database()
    partner = partner_create(slug=SLUG, name=f"Bench {scale.name}")
    staff_create(partner=partner, email="bench@bench.example", role=Role.SALES_AGENT, password=None)
    config = DemoConfig(scale.customers, scale.users, scale.days, seed, TODAY)
    with temp_folder() as folder:
        started = time.perf_counter()
        counts = write_demo_files(Path(folder), config)
        figures.append(Figure("generate the files", time.perf_counter() - started, "s", "product generator"))
        read_by: dict[str, float] = {}  # when each file was last reported read (staging follows file order)

        class Timing(Progress):
            def rows(self, name: str, rows: int) -> None:
                read_by[name] = time.perf_counter()

        started = time.perf_counter()
        with scope(partner=partner):
            run = data_import(
                partner=partner,
                source=source_from_path(Path(folder)),
                origin=ImportRun.Origin.COMMAND,
                progress=Timing(),
            )
        seconds = time.perf_counter() - started
    if run.status != ImportRun.Status.SUCCEEDED:
        raise SystemExit(f"The bench import failed: {run.errors[:5]}")
    rows = sum(counts.values())
    activity = counts["activity.csv"]
    staged = read_by["activity.csv"] - read_by["assignments.csv"]
    figures.append(Figure("import every file (all or nothing)", seconds, "s", f"{rows:,} rows"))
    figures.append(Figure("import rate, all rows", rows / seconds, "rows/s", "COPY into staging, checks, upsert"))
    figures.append(Figure("import: activity.csv staged", activity / staged, "rows/s", f"{activity:,} rows, COPY"))
    return partner


def _empty_database() -> None:
    """Removes every partner's data (TRUNCATE on PostgreSQL: deleting tens of millions of rows
    one by one would take longer than the benchmark); the shipped SKU catalog stays. The command
    (bench/run.py) runs only on a database named *bench*."""
    tenant_models = [
        model
        for model in apps.get_models()
        if any(field.name == "partner" for field in model._meta.fields) and model not in (Product, StaffUser)
    ]
    # Their many-to-many tables (report recipients) reference them, so they go in the same TRUNCATE.
    tenant_tables = [model._meta.db_table for model in tenant_models] + [
        field.remote_field.through._meta.db_table  # type: ignore[union-attr]  # a many-to-many always has one
        for model in tenant_models
        for field in model._meta.local_many_to_many
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tenant_tables)}")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in tenant_tables:
                cursor.execute(f"DELETE FROM {table}")
            cursor.execute("PRAGMA foreign_keys = ON")
    Product.objects.filter(partner__isnull=False).delete()
    StaffUser.objects.filter(partner__isnull=False).delete()
    Partner.objects.all().delete()


def _row_counts(partner: Partner) -> dict[str, int]:
    return {
        "customers": Customer.objects.filter(partner=partner).count(),
        "users": _count("customers_enduser", partner),
        "assignments": _count("customers_licenseassignment", partner),
        "activity rows": _count("customers_activity", partner),
    }


def _count(table: str, partner: Partner) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE partner_id = %s", [partner.pk])
        (count,) = cursor.fetchone()
        return int(count)


def _floor(partner: Partner) -> None:
    params = engine.parameters(partner_id=partner.pk, as_of=AS_OF)
    with transaction.atomic(), connection.cursor() as cursor:
        engine.set_work_mem(cursor)  # the same memory as the product's statements: a fair floor
        cursor.execute("DROP TABLE IF EXISTS bench_floor")
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_floor (customer_id bigint, product_id bigint, sold bigint, "
            "own_sold bigint, assigned bigint, entitled bigint, active bigint)"
        )
        cursor.execute(FLOOR_SKU_GRAIN, params)
        cursor.execute("DROP TABLE bench_floor")


def _naive_loop(partner: Partner) -> float:
    """The SKU grain as a per-customer, per-SKU ORM loop, on NAIVE_SAMPLE customers (seconds)."""
    window = AS_OF - dt.timedelta(days=WINDOW_DAYS - 1)
    current = Q(assigned_on__lte=AS_OF) & (Q(removed_on__isnull=True) | Q(removed_on__gt=AS_OF))
    started = time.perf_counter()
    for customer in Customer.objects.filter(partner=partner).order_by("pk")[:NAIVE_SAMPLE]:
        subscriptions = Subscription.objects.filter(customer=customer)
        for product_id in set(subscriptions.values_list("product_id", flat=True)):
            of_sku = subscriptions.filter(product_id=product_id)
            counted = of_sku.filter(status="active", is_trial=False).filter(
                (Q(start_date__isnull=True) | Q(start_date__lte=AS_OF))
                & (Q(end_date__isnull=True) | Q(end_date__gte=AS_OF))
            )
            counted.aggregate(Sum("quantity"))
            held = LicenseAssignment.objects.filter(subscription__in=counted).filter(current)
            held.filter(state__in=["active", "suspended"]).count()
            held.filter(state="active").values("user").distinct().count()
            workloads = ProductWorkload.objects.filter(product_id=product_id).values("workload")
            recent = Activity.objects.filter(activity_date__range=(window, AS_OF), workload__in=workloads)
            LicenseAssignment.objects.filter(
                subscription__in=of_sku, assigned_on__lte=AS_OF, user__in=recent.values("user")
            ).exclude(removed_on__lte=window).values("user").distinct().count()
    return time.perf_counter() - started


def _backfill(partner: Partner, one_date: float) -> list[Figure]:
    dates = date_range(AS_OF - dt.timedelta(days=27), AS_OF)
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    metrics_recompute_dates(partner=partner, dates=dates, trigger=Trigger.BENCHMARK)
    seconds = time.perf_counter() - started
    return [
        Figure("28-day backfill", seconds, "s", f"{seconds / one_date:.1f}× one date (target ≤ 28×)"),
        Figure("backfill: peak RSS growth", peak_rss_mib() - rss_before, "MiB", "process, during the backfill"),
    ]


def _pages(partner: Partner, runs: int) -> list[Figure]:
    client = Client(SERVER_NAME="localhost")  # an allowed host of the debug settings
    client.force_login(StaffUser.objects.get(partner=partner))
    largest = _largest_customer(partner)
    pages = {
        "page: customer list": "/customers/",
        f"page: insights of the largest customer ({largest[1]:,} users)": f"/customers/{largest[0]}/insights/",
        "page: portfolio analytics": "/analytics/",
        "page: portfolio analytics, filtered": "/analytics/?family=office365&usage_max=60&kind=low_adoption",
    }
    return [_page(client, name, url, runs) for name, url in pages.items()]


def _export(partner: Partner, runs: int) -> list[Figure]:
    """The portfolio CSV at its largest grain (workload): rows per second streamed, and the peak
    of Python allocations while streaming (tracemalloc, in a run of its own)."""

    def stream() -> int:
        lines = portfolio_lines(partner=partner, as_of=AS_OF, grain="workload")
        for _ in lines:
            pass
        return lines.rows

    rows = stream()
    seconds = median_time(stream, runs)
    tracemalloc.start()
    try:
        stream()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return [
        Figure("portfolio CSV export, workload grain", rows / seconds, "rows/s", f"{rows:,} rows streamed"),
        Figure("export: peak Python allocations", peak, "MiB", "tracemalloc, while streaming"),
    ]


EXPORT_SLUG = "bench-export"


def _large_export(rows_wanted: int, runs: int) -> list[Figure]:
    """The SKU-grain export of a portfolio made of `rows_wanted` snapshot rows (customers × the
    catalog's insight SKUs, written straight into the snapshot table: the export reads nothing
    else): rows per second streamed, and the growth of the process's resident memory, sampled
    while streaming."""
    partner = _export_partner(rows_wanted)

    def stream() -> tuple[int, float]:
        before = peak = current_rss_mib()
        lines = portfolio_lines(partner=partner, as_of=AS_OF, grain="sku")
        for blocks, _ in enumerate(lines):
            if blocks % 25 == 0:
                peak = max(peak, current_rss_mib())
        return lines.rows, max(peak, current_rss_mib()) - before

    with scope(partner=partner):
        rows, growth = stream()
        seconds = median_time(stream, runs)
    return [
        Figure("portfolio CSV export, SKU grain", rows / seconds, "rows/s", f"{rows:,} rows streamed"),
        Figure("large export: resident memory growth", growth, "MiB", "process RSS, sampled while streaming"),
    ]


def _export_partner(rows_wanted: int) -> Partner:
    """A partner whose only data are SKU snapshots at AS_OF: enough customers for `rows_wanted`
    rows, made once and kept (the main dataset's TRUNCATE removes it with the rest)."""
    with scopes_disabled():
        products = list(Product.objects.filter(partner=None, family__in=INSIGHT_FAMILIES))
        customers = -(-rows_wanted // len(products))
        partner = Partner.objects.filter(slug=EXPORT_SLUG).first() or partner_create(slug=EXPORT_SLUG, name="Export")
        if Customer.objects.filter(partner=partner).count() != customers:
            Customer.objects.filter(partner=partner).delete()
            Customer.objects.bulk_create(
                (Customer(partner=partner, external_id=f"T{n:07d}", name=f"Tenant {n:07d}") for n in range(customers)),
                batch_size=10_000,
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO metrics_skusnapshot (partner_id, customer_id, product_id, as_of, sold_licenses, "
                    "own_sold_licenses, assigned_licenses, entitled_users, active_users) "
                    "SELECT c.partner_id, c.id, pr.id, %s, 40 + c.id %% 60, 20, 30 + c.id %% 50, 25, 10 + c.id %% 31 "
                    "FROM customers_customer c CROSS JOIN customers_product pr "
                    "WHERE c.partner_id = %s AND pr.partner_id IS NULL AND pr.family IN ('office365', 'dynamics365')",
                    [AS_OF, partner.pk],
                )
                if connection.vendor == "postgresql":
                    cursor.execute("ANALYZE metrics_skusnapshot")
    return partner


def _largest_customer(partner: Partner) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id, COUNT(*) FROM customers_enduser WHERE partner_id = %s "
            "GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1",
            [partner.pk],
        )
        customer_id, users = cursor.fetchone()
        return int(customer_id), int(users)


def _page(client: Client, name: str, url: str, runs: int) -> Figure:
    def get() -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")

    get()  # warm: templates compiled, caches filled
    reset_queries()  # with DEBUG on the log is a deque of 9,000 that the import filled up
    with CaptureQueriesContext(connection) as queries:
        get()
    count = len(queries)  # now: the context reads the log lazily, and later requests reset it
    return Figure(name, median_time(get, runs) * 1000, "ms", "server time, Django test client", queries=count)
