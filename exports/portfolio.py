"""The portfolio CSV export of SPEC §7 at the SKU, workload and family grains: one generator of
lines that the web download, the `export_portfolio` command and the scheduled report all use.

Rows come from the stored snapshots through one streamed query (a server-side cursor on
PostgreSQL), so memory stays flat however many customers there are. Sorting compares by code
point: `COLLATE "C"` on PostgreSQL, SQLite's BINARY.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Collate
from django_scopes import scope

from accounts.models import Partner
from customers.models import Customer
from exports.cells import CsvFile
from metrics.filters import PortfolioFilters, family_workloads
from metrics.models import FamilySnapshot, RecomputeRun, SkuSnapshot, WorkloadSnapshot
from metrics.numbers import pct
from metrics.selectors import latest_snapshot_date

CHUNK_ROWS = 2000
CUSTOMER = ("as_of", "customer_id", "customer_name")
LICENSES = ("sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users")
USERS = ("entitled_users", "active_users")


@dataclass(frozen=True)
class Grain:
    """One grain of the export: its header (SPEC §7, exactly), the snapshot table and the key
    columns after the customer's."""

    header: tuple[str, ...]
    keys: tuple[str, ...]  # the ORM paths of the grain's key columns, in sort order
    numbers: tuple[str, ...]
    text_columns: range  # as_of, customer_id, customer_name and the grain's text columns


GRAINS: dict[str, Grain] = {
    "sku": Grain(
        header=(*CUSTOMER, "product_family", "sku", "sku_name", *LICENSES, "deployment_pct", "usage_pct"),
        keys=("product__family", "product__sku"),
        numbers=LICENSES,
        text_columns=range(6),
    ),
    "workload": Grain(
        header=(*CUSTOMER, "workload", *USERS, "usage_pct"),
        keys=("workload",),
        numbers=USERS,
        text_columns=range(4),
    ),
    "family": Grain(
        header=(*CUSTOMER, "product_family", *LICENSES, "deployment_pct", "usage_pct"),
        keys=("family",),
        numbers=LICENSES,
        text_columns=range(4),
    ),
}


def _binary(path: str) -> Collate:
    return Collate(F(path), "C" if connection.vendor == "postgresql" else "BINARY")


def _any_number(numbers: tuple[str, ...]) -> Q:
    """SPEC §7: only rows with a non-zero number."""
    condition = Q()
    for name in numbers:
        condition |= Q(**{f"{name}__gt": 0})
    return condition


def snapshot_rows(
    *,
    partner: Partner,
    as_of: dt.date,
    grain: str,
    filters: PortfolioFilters | None = None,
    customer_ids: list[int] | None = None,
) -> QuerySet:
    """The export's rows at `grain` as value tuples in export order: customer external id, name,
    the grain's keys (the SKU's name after its sku), then the counts. `customer_ids` narrows them
    (the page's matching customers, or one customer)."""
    filters = filters or PortfolioFilters()
    spec = GRAINS[grain]
    if grain == "sku":
        rows = SkuSnapshot.objects.filter(product__family__in=filters.families)
        if filters.sku:
            rows = rows.filter(product__sku=filters.sku)
        columns = ["product__family", "product__sku", "product__name"]
    elif grain == "workload":
        rows = WorkloadSnapshot.objects.all()
        if filters.family:
            rows = rows.filter(workload__in=family_workloads(partner=partner, family=filters.family))
        columns = ["workload"]
    else:
        rows = FamilySnapshot.objects.filter(family__in=filters.families)
        columns = ["family"]
    rows = rows.filter(_any_number(spec.numbers), partner=partner, as_of=as_of)
    if customer_ids is not None:
        rows = rows.filter(customer_id__in=customer_ids)
    order = ["customer__name", "customer__external_id", *spec.keys]
    return rows.order_by(*(_binary(path) for path in order)).values_list(
        "customer__external_id", "customer__name", *columns, *spec.numbers
    )


def portfolio_lines(
    *,
    partner: Partner,
    as_of: dt.date,
    grain: str,
    filters: PortfolioFilters | None = None,
    customer_ids: list[int] | None = None,
) -> CsvFile:
    """The CSV file of SPEC §7: BOM and header, then one line per row, in blocks. It reads the
    database only while it is iterated, inside the partner's scope (a streaming response is
    iterated after the view and its middleware returned)."""
    spec = GRAINS[grain]
    day = as_of.isoformat()
    licenses = spec.numbers == LICENSES

    def rows() -> Iterator[tuple]:
        with scope(partner=partner):
            query = snapshot_rows(partner=partner, as_of=as_of, grain=grain, filters=filters, customer_ids=customer_ids)
            for row in query.iterator(chunk_size=CHUNK_ROWS):
                # A row ends with (sold, own, assigned,) entitled, active: the percentages follow.
                usage = pct(row[-1], row[-2])
                yield (day, *row, pct(row[-3], row[-5]), usage) if licenses else (day, *row, usage)

    return CsvFile(spec.header, rows(), spec.text_columns)


def export_filename(*, partner: Partner, as_of: dt.date, grain: str, customer: Customer | None = None) -> str:
    """`partner-insights_<partner>_<customer>_<grain>_<date>.csv`: safe characters only (`grain`
    may name another list, such as `inactive-30d`)."""
    parts = ["partner-insights", partner.slug, *([f"customer-{customer.pk}"] if customer else []), grain]
    return "_".join([*parts, as_of.isoformat()]) + ".csv"


def grain_of(value: str | None) -> str:
    """The requested grain; `sku` when none is given (SPEC §5). Raises ValueError naming the
    grains for anything else."""
    if not value:
        return "sku"
    if value not in GRAINS:
        raise ValueError(f"Unknown grain '{value}': use one of {', '.join(GRAINS)}.")
    return value


class ExportError(Exception):
    """An export that cannot be made; the message says why, for a person."""


def export_date(*, partner: Partner, requested: dt.date | None) -> dt.date:
    """The date to export: `requested`, or the partner's latest snapshot date (SPEC §5). A date
    without a snapshot is an error naming the latest date that has one."""
    latest = latest_snapshot_date(partner=partner)
    if latest is None:
        raise ExportError(f"{partner.name} has no metric snapshot yet: run recompute_metrics first.")
    if requested is None or requested == latest:
        return latest
    if not RecomputeRun.objects.filter(partner=partner, as_of=requested, published_at__isnull=False).exists():
        raise ExportError(f"No snapshot for {requested:%Y-%m-%d}; the latest date with one is {latest:%Y-%m-%d}.")
    return requested
