"""The portfolio CSV export of SPEC §7 at the SKU, workload and family grains: one generator of
lines that the web download, the `export_portfolio` command and the scheduled report all use.

Rows come from the stored snapshots through one streamed query (a server-side cursor on
PostgreSQL), so memory stays flat however many customers there are. Sorting compares by code
point: `COLLATE "C"` on PostgreSQL, SQLite's BINARY.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from django.db import connection
from django.db.models import F
from django.db.models.functions import Collate
from django_scopes import scope

from accounts.models import Partner
from customers.models import Customer
from exports.cells import CsvFile
from metrics.filters import PortfolioFilters
from metrics.models import FamilySnapshot, Percentage, SkuSnapshot, WorkloadSnapshot, percentages
from metrics.selectors import grain_snapshot_list, latest_snapshot_date, snapshot_date_exists

CHUNK_ROWS = 2000
CUSTOMER = {"customer_id": "customer__external_id", "customer_name": "customer__name"}
LICENSES = ("sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users")
USERS = ("entitled_users", "active_users")


@dataclass(frozen=True)
class Grain:
    """One grain of the export: the snapshot model it reads, and for each column of its header
    (SPEC §7, exactly) where the value comes from: `as_of`, a path of the snapshot (`values`), or
    one of the model's percentages (`shares`, by name), which close the line."""

    model: type[SkuSnapshot] | type[WorkloadSnapshot] | type[FamilySnapshot]
    values: Mapping[str, str]  # column -> ORM path, in header order after as_of
    numbers: tuple[str, ...]  # a row is exported when one of these is not 0
    shares: tuple[str, ...]
    keys: tuple[str, ...]  # the ORM paths of the grain's key, in sort order after the customer's
    text_columns: range  # as_of, the customer's and the grain's text columns

    @property
    def percentages(self) -> tuple[Percentage, ...]:
        of_model = percentages(self.model)
        return tuple(of_model[name] for name in self.shares)

    @property
    def header(self) -> tuple[str, ...]:
        return ("as_of", *self.values, *self.shares)


GRAINS: dict[str, Grain] = {
    "sku": Grain(
        SkuSnapshot,
        {**CUSTOMER, "product_family": "product__family", "sku": "product__sku", "sku_name": "product__name"}
        | {name: name for name in LICENSES},
        LICENSES,
        ("deployment_pct", "usage_pct"),
        keys=("product__family", "product__sku"),
        text_columns=range(6),
    ),
    "workload": Grain(
        WorkloadSnapshot,
        {**CUSTOMER, "workload": "workload"} | {name: name for name in USERS},
        USERS,
        ("usage_pct",),
        keys=("workload",),
        text_columns=range(4),
    ),
    "family": Grain(
        FamilySnapshot,
        {**CUSTOMER, "product_family": "family"} | {name: name for name in LICENSES},
        LICENSES,
        ("deployment_pct", "usage_pct"),
        keys=("family",),
        text_columns=range(4),
    ),
}


def _binary(path: str) -> Collate:
    return Collate(F(path), "C" if connection.vendor == "postgresql" else "BINARY")


def portfolio_lines(
    *,
    partner: Partner,
    as_of: dt.date,
    grain: str,
    filters: PortfolioFilters | None = None,
    customer_ids: list[int] | None = None,
) -> CsvFile:
    """The CSV file of SPEC §7: BOM and header, then one line per row, in blocks, sorted by the
    customer's name and id and the grain's key by code point. It reads the database only while it
    is iterated, inside the partner's scope (a streaming response is iterated after the view and
    its middleware returned)."""
    spec = GRAINS[grain]
    day = as_of.isoformat()
    values = itemgetter(*spec.values.values())
    shares = spec.percentages

    def rows() -> Iterator[tuple[Any, ...]]:
        with scope(partner=partner):
            snapshots = grain_snapshot_list(
                partner=partner,
                as_of=as_of,
                model=spec.model,
                nonzero=spec.numbers,
                filters=filters,
                customer_ids=customer_ids,
            )
            order = ("customer__name", "customer__external_id", *spec.keys)
            query = snapshots.order_by(*(_binary(path) for path in order)).values(*spec.values.values())
            for row in query.iterator(chunk_size=CHUNK_ROWS):
                yield (day, *values(row), *(share.of(row) for share in shares))

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
    if not snapshot_date_exists(partner=partner, as_of=requested):
        raise ExportError(f"No snapshot for {requested:%Y-%m-%d}; the latest date with one is {latest:%Y-%m-%d}.")
    return requested
