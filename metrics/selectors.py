"""Reads of metric snapshots and runs. Every selector takes the partner as a required keyword."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet

from accounts.models import Partner
from customers.models import Customer
from metrics.definitions import entitles, excluded_sku, product_workloads, shown_family, workload_bit
from metrics.models import (
    Counts,
    FamilySnapshot,
    InactiveSnapshot,
    InsightSettings,
    PortfolioSnapshot,
    RecomputeRun,
    SkuSetting,
    SkuSnapshot,
    WorkloadSnapshot,
)


def snapshot_dates(*, partner: Partner) -> list[dt.date]:
    """The dates that have published snapshots, newest first."""
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    return list(published.order_by("-as_of").values_list("as_of", flat=True))


def latest_snapshot_date(*, partner: Partner) -> dt.date | None:
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    return published.order_by("-as_of").values_list("as_of", flat=True).first()


def recompute_run_list(*, partner: Partner) -> QuerySet[RecomputeRun]:
    return RecomputeRun.objects.filter(partner=partner).order_by("-started_at", "-as_of")


def insight_settings(*, partner: Partner) -> InsightSettings:
    """The partner's insight settings; the defaults of SPEC §3 and §8 when it never saved any."""
    return InsightSettings.objects.filter(partner=partner).first() or InsightSettings(partner=partner)


def sku_setting_map(*, partner: Partner) -> dict[str, SkuSetting]:
    """The partner's per-SKU settings (unit price, excluded), by sku."""
    return {setting.sku: setting for setting in SkuSetting.objects.filter(partner=partner)}


@dataclass(frozen=True)
class InactiveUser:
    """An entitled user with no activity on the workloads of their licenses for N days (SPEC §8)."""

    user_id: int
    upn: str
    display_name: str
    customer_id: int
    customer_external_id: str
    customer_name: str
    skus: tuple[str, ...]
    last_activity: dt.date | None  # on any workload of their licenses, up to the date; None: never
    monthly_cost: Decimal | None  # the unit prices of their licenses; None when no price is set


def _sku_list_aggregate() -> str:
    return (
        "STRING_AGG(pr.sku, ' ' ORDER BY pr.sku)" if connection.vendor == "postgresql" else "GROUP_CONCAT(pr.sku, ' ')"
    )


# Users entitled at D on a shown, not excluded SKU, with their SKUs, last activity on a workload
# of those SKUs up to D and the sum of their SKUs' unit prices; only those idle since D-N+1. The
# last date is one backward probe per license of the activity primary key, materialised once.
INACTIVE_USERS = f"""
    WITH entitled AS (
        SELECT DISTINCT a.user_id, s.customer_id, s.product_id
        FROM customers_licenseassignment a
        JOIN customers_subscription s ON s.id = a.subscription_id
        JOIN customers_product pr ON pr.id = s.product_id AND {shown_family("pr")}
        LEFT JOIN metrics_skusetting x ON {excluded_sku("x", "pr")}
        WHERE a.partner_id = %(partner_id)s AND {entitles("a", "s")}
          AND x.id IS NULL AND (%(customer_id)s IS NULL OR s.customer_id = %(customer_id)s)
    ),
    licenses AS MATERIALIZED (
        SELECT e.user_id, e.customer_id, e.product_id, (
            SELECT act.activity_date FROM customers_activity act
            WHERE act.user_id = e.user_id AND act.activity_date <= %(as_of)s
              AND (pm.workloads & {workload_bit("act.workload")}) <> 0
            ORDER BY act.activity_date DESC LIMIT 1
        ) AS last_date
        FROM entitled e LEFT JOIN {product_workloads()} pm ON pm.product_id = e.product_id
    )
    SELECT u.id, u.upn, u.display_name, c.id AS customer_id, c.external_id, c.name, {{skus}}, MAX(l.last_date),
           SUM(price.monthly_price) AS cost, COUNT(price.monthly_price) AS priced
    FROM licenses l
    JOIN customers_enduser u ON u.id = l.user_id
    JOIN customers_customer c ON c.id = l.customer_id
    JOIN customers_product pr ON pr.id = l.product_id
    LEFT JOIN metrics_skusetting price ON price.partner_id = %(partner_id)s AND price.sku = pr.sku
    GROUP BY u.id, u.upn, u.display_name, c.id, c.external_id, c.name
    HAVING MAX(l.last_date) IS NULL OR MAX(l.last_date) < %(idle_since)s
    ORDER BY c.name, c.id, u.upn, u.id"""


def inactive_user_list(
    *, partner: Partner, as_of: dt.date, days: int, customer: Customer | None = None, limit: int | None = None
) -> Iterator[InactiveUser]:
    """Inactive licensed users of the partner (or of one customer) at `as_of`: entitled users
    with no activity on any workload of their licenses in as_of-days+1 … as_of, never-active
    users included. Streams in customer and user order (the first `limit` only, when given:
    that saves reading the rest, not the database's work of finding and sorting them all), one SQL
    statement."""
    params = {
        "partner_id": partner.pk,
        "as_of": as_of,
        "idle_since": as_of - dt.timedelta(days=days - 1),
        "customer_id": customer.pk if customer else None,
    }
    statement = INACTIVE_USERS.format(skus=_sku_list_aggregate())
    if limit is not None:
        statement += f" LIMIT {int(limit)}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        for user_id, upn, name, customer_id, external_id, customer_name, skus, last, cost, priced in cursor:
            yield InactiveUser(
                user_id,
                upn,
                name,
                customer_id,
                external_id,
                customer_name,
                tuple(sorted(skus.split(" "))),
                _as_date(last),
                _money(cost) if priced else None,
            )


def inactive_user_summary(
    *, partner: Partner, as_of: dt.date, days: int, customer: Customer | None = None
) -> dict[int, tuple[int, Decimal | None]]:
    """Per customer (or for one) with inactive licensed users at `as_of`, a snapshot date: how
    many, and their monthly cost at today's unit prices (None when no price is set). Reads the
    engine's InactiveSnapshot rows: one SQL statement whatever the number of users."""
    users = InactiveSnapshot.column(days)
    summary = f"""
        SELECT i.customer_id, SUM(CASE WHEN i.product_id IS NULL THEN i.{users} ELSE 0 END),
               SUM(i.{users} * price.monthly_price), COUNT(price.monthly_price)
        FROM metrics_inactivesnapshot i
        LEFT JOIN customers_product pr ON pr.id = i.product_id
        LEFT JOIN metrics_skusetting price ON price.partner_id = %(partner_id)s AND price.sku = pr.sku AND i.{users} > 0
        WHERE i.partner_id = %(partner_id)s AND i.as_of = %(as_of)s
          AND (%(customer_id)s IS NULL OR i.customer_id = %(customer_id)s)
        GROUP BY i.customer_id
        HAVING SUM(CASE WHEN i.product_id IS NULL THEN i.{users} ELSE 0 END) > 0"""
    with connection.cursor() as cursor:
        params = {"partner_id": partner.pk, "as_of": as_of, "customer_id": customer.pk if customer else None}
        cursor.execute(summary, params)
        return {customer_id: (count, _money(cost) if priced else None) for customer_id, count, cost, priced in cursor}


def _money(value: object) -> Decimal:
    """A sum of prices as Decimal cents (SQLite sums decimals as floats)."""
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _as_date(value: dt.date | str | None) -> dt.date | None:
    """SQLite hands dates of raw queries back as text."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class AsOf:
    """The date a page shows: the requested snapshot date, else the latest (SPEC §5)."""

    date: dt.date | None  # None: no snapshot at all yet
    dates: list[dt.date]  # every date with a snapshot, newest first, for the date picker
    missing: dt.date | None  # a requested date that has no snapshot (the page says so)


def as_of_choice(*, partner: Partner, requested: str | None) -> AsOf:
    """Resolves `?as_of=`: a date with a snapshot is shown; anything else shows the latest date
    and, for a well-formed date without a snapshot, says so. One query."""
    dates = snapshot_dates(partner=partner)
    try:
        wanted = dt.date.fromisoformat(requested) if requested else None
    except ValueError:
        wanted = None
    if wanted in dates:
        return AsOf(wanted, dates, None)
    return AsOf(dates[0] if dates else None, dates, wanted)


def snapshot_span(
    *, partner: Partner, as_of: dt.date | None = None, first: dt.date | None = None, last: dt.date | None = None
) -> tuple[dt.date, dt.date] | None:
    """The dates to read, both included: one date, a range, or by default the partner's latest
    snapshot date; None when the partner has no snapshot yet."""
    if first is not None and last is not None:
        return first, last
    day = as_of or latest_snapshot_date(partner=partner)
    return (day, day) if day else None


def _snapshots(model: type[Counts], partner: Partner, span: tuple[dt.date, dt.date] | None, **filters: Any) -> QuerySet:
    if span is None:
        return model.objects.none()
    return model.objects.filter(partner=partner, as_of__range=span, **filters)


def sku_snapshot_list(
    *, partner: Partner, customer: Customer, span: tuple[dt.date, dt.date] | None
) -> QuerySet[SkuSnapshot]:
    """A customer's SKU-grain snapshots in `span`, with the product's sku, name and family."""
    return _snapshots(SkuSnapshot, partner, span, customer=customer).annotate(
        sku=F("product__sku"), sku_name=F("product__name"), product_family=F("product__family")
    )


def workload_snapshot_list(
    *, partner: Partner, customer: Customer, span: tuple[dt.date, dt.date] | None
) -> QuerySet[WorkloadSnapshot]:
    return _snapshots(WorkloadSnapshot, partner, span, customer=customer)


def family_snapshot_list(
    *, partner: Partner, customer: Customer, span: tuple[dt.date, dt.date] | None
) -> QuerySet[FamilySnapshot]:
    return _snapshots(FamilySnapshot, partner, span, customer=customer)


def portfolio_snapshot_list(*, partner: Partner, span: tuple[dt.date, dt.date] | None) -> QuerySet[PortfolioSnapshot]:
    return _snapshots(PortfolioSnapshot, partner, span)
