"""Reads of metric snapshots and runs. Every selector takes the partner as a required keyword."""

from __future__ import annotations

import datetime as dt
import operator
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from typing import Any, TypeVar

from django.db import connection
from django.db.models import (
    Case,
    Count,
    DecimalField,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Greatest, Lower

from accounts.models import Partner
from customers.models import INSIGHT_FAMILIES, Customer, SupportCategory, SupportRequest
from customers.selectors import family_workload_names
from metrics.definitions import WINDOW_DAYS, entitles, excluded_sku, product_workloads, shown_family, workload_bit
from metrics.filters import PortfolioFilters
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
from metrics.recommendations import FamilyNumbers, Recommendation, evaluate


def snapshot_dates(*, partner: Partner) -> list[dt.date]:
    """The dates that have published snapshots, newest first."""
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    return list(published.order_by("-as_of").values_list("as_of", flat=True))


def snapshot_date_exists(*, partner: Partner, as_of: dt.date) -> bool:
    """Whether `as_of` has published snapshots."""
    return RecomputeRun.objects.filter(partner=partner, as_of=as_of, published_at__isnull=False).exists()


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


# Users entitled at D on shown, not excluded SKUs and idle since D-N+1, with their SKUs, last
# activity (one backward probe per license of the activity primary key) and unit prices.
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
    params: dict[str, Any] = {
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
        params: dict[str, Any] = {
            "partner_id": partner.pk,
            "as_of": as_of,
            "customer_id": customer.pk if customer else None,
        }
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


SnapshotT = TypeVar("SnapshotT", bound=Counts)


def _snapshots(
    model: type[SnapshotT], partner: Partner, span: tuple[dt.date, dt.date] | None, **filters: Any
) -> QuerySet[SnapshotT]:
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


def grain_snapshot_list(
    *,
    partner: Partner,
    as_of: dt.date,
    model: type[SkuSnapshot] | type[WorkloadSnapshot] | type[FamilySnapshot],
    nonzero: tuple[str, ...],
    filters: PortfolioFilters | None = None,
    customer_ids: list[int] | None = None,
) -> QuerySet[Any]:
    """The rows of one grain (SkuSnapshot, WorkloadSnapshot or FamilySnapshot) at `as_of` with a
    number of `nonzero` above 0 (SPEC §7), of the shown families, narrowed by the portfolio
    `filters` (the SKU at the SKU grain, the family's workloads at the workload grain) and to
    `customer_ids`."""
    filters = filters or PortfolioFilters()
    rows: QuerySet[Any]
    if model is SkuSnapshot:
        rows = SkuSnapshot.objects.filter(partner=partner, as_of=as_of, product__family__in=filters.families)
        if filters.sku:
            rows = rows.filter(product__sku=filters.sku)
    elif model is WorkloadSnapshot:
        rows = WorkloadSnapshot.objects.filter(partner=partner, as_of=as_of)
        if filters.family:
            rows = rows.filter(workload__in=family_workload_names(partner=partner, family=filters.family))
    else:
        rows = FamilySnapshot.objects.filter(partner=partner, as_of=as_of, family__in=filters.families)
    rows = rows.filter(reduce(operator.or_, (Q(**{f"{name}__gt": 0}) for name in nonzero)))
    return rows if customer_ids is None else rows.filter(customer_id__in=customer_ids)


def recommendation_list(
    *, partner: Partner, as_of: dt.date, settings: InsightSettings, customer_ids: list[int] | None = None
) -> list[Recommendation]:
    """Every recommendation of the partner's customers (or of `customer_ids`) at `as_of`, in
    customer, kind and family order (SPEC §3). Two queries whatever the number of customers."""
    families = FamilySnapshot.objects.filter(partner=partner, as_of=as_of, family__in=INSIGHT_FAMILIES)
    if customer_ids is not None:
        families = families.filter(customer_id__in=list(customer_ids))
    rows = families.order_by("customer_id", "family").values_list(
        "customer_id", "family", "rec_sold_licenses", "rec_assigned_licenses", "rec_entitled_users", "rec_active_users"
    )
    numbers: dict[int, dict[str, FamilyNumbers]] = defaultdict(dict)
    for customer_id, family, *counts in rows:
        numbers[customer_id][family] = FamilyNumbers(*counts)
    # The whole portfolio's counts without an id list: 2,000 ids as parameters cost Django and
    # psycopg more than the query (0.2 s at 2,000 customers).
    howto = howto_request_counts(
        partner=partner, as_of=as_of, customer_ids=None if customer_ids is None else list(numbers)
    )
    return evaluate(numbers, howto, settings)


def howto_request_counts(*, partner: Partner, as_of: dt.date, customer_ids: list[int] | None) -> dict[int, int]:
    """How-to support requests opened in the window W(as_of), per customer (of `customer_ids`,
    or every customer when None)."""
    window_start = as_of - dt.timedelta(days=WINDOW_DAYS - 1)
    requests = SupportRequest.objects.filter(
        partner=partner, category=SupportCategory.HOWTO, opened_on__gte=window_start, opened_on__lte=as_of
    )
    if customer_ids is not None:
        requests = requests.filter(customer_id__in=customer_ids)
    return dict(requests.values_list("customer_id").annotate(n=Count("*")).order_by())


def matching_family_rows(*, partner: Partner, as_of: dt.date, filters: PortfolioFilters) -> QuerySet[FamilySnapshot]:
    """The family-grain rows at `as_of` in the chosen families whose usage and deployment fall in
    the chosen ranges."""
    rows = FamilySnapshot.objects.filter(partner=partner, as_of=as_of, family__in=filters.families).alias(
        usage_x100=F("active_users") * 100, deployment_x100=F("assigned_licenses") * 100
    )
    for condition in filters.family_row_conditions():
        rows = rows.filter(condition)
    return rows


def matching_customer_ids(
    *, partner: Partner, as_of: dt.date, filters: PortfolioFilters, settings: InsightSettings
) -> list[int] | None:
    """The ids of the partner's customers that match every filter at `as_of`; None when the
    filters keep every customer. Each filter's ids are read by a query of its own and intersected
    here: a literal list keeps every later query's plan simple (a semi-join on freshly recomputed
    snapshots was nested-looped: 0.4 s at 2,000 customers)."""
    if not filters.narrows_customers:
        return None
    rows = matching_family_rows(partner=partner, as_of=as_of, filters=filters)
    ids = set(rows.values_list("customer_id", flat=True))
    if filters.sku:
        holders = SkuSnapshot.objects.filter(partner=partner, as_of=as_of, product__sku=filters.sku)
        ids &= set(holders.values_list("customer_id", flat=True))
    if filters.kind:
        found = recommendation_list(partner=partner, as_of=as_of, settings=settings)
        families = set(filters.families) | {""}  # support load concerns the whole customer
        ids &= {r.customer_id for r in found if r.kind == filters.kind and r.family in families}
    return sorted(ids)


@dataclass(frozen=True)
class UnusedLine:
    customer_id: int
    customer_name: str
    unused: int  # seats sold and not assigned, SKU by SKU (an over-deployed SKU fills no other's seats)
    monthly_cost: Decimal | None  # of the priced SKUs; None when no unused SKU has a price


def unused_ranking(*, partner: Partner, as_of: dt.date, customer_ids: list[int] | None, limit: int) -> list[UnusedLine]:
    """The customers (of `customer_ids`, or all) with the most unused seats at `as_of`, and what
    those cost a month at the partner's unit prices. One aggregate query."""
    price = SkuSetting.objects.filter(partner=partner, sku=OuterRef("product__sku")).values("monthly_price")[:1]
    rows = SkuSnapshot.objects.filter(partner=partner, as_of=as_of, product__family__in=PortfolioFilters().families)
    if customer_ids is not None:
        rows = rows.filter(customer_id__in=customer_ids)
    rows = rows.annotate(
        unused_seats=Case(
            When(sold_licenses__gt=F("assigned_licenses"), then=F("sold_licenses") - F("assigned_licenses")),
            default=0,
            output_field=IntegerField(),
        ),
        price=Subquery(price, output_field=DecimalField(max_digits=10, decimal_places=2)),
    )
    ranked = (
        rows.values("customer_id", "customer__name")
        .annotate(
            unused=Sum("unused_seats"),
            cost=Sum(F("unused_seats") * F("price"), output_field=DecimalField(max_digits=14, decimal_places=2)),
            priced=Count("price"),
        )
        .filter(unused__gt=0)
        .order_by("-unused", Lower("customer__name"), "customer_id")[:limit]
    )
    return [
        UnusedLine(
            row["customer_id"], row["customer__name"], row["unused"], _money(row["cost"]) if row["priced"] else None
        )
        for row in ranked
    ]


def most_unused_customers(*, partner: Partner, as_of: dt.date, limit: int) -> list[dict[str, Any]]:
    """The `limit` customers with the most unused licenses over their shown families at `as_of`
    (an over-assigned family does not offset another's unused seats): customer_id,
    customer__name, customer__external_id, unused, sold."""
    rows = FamilySnapshot.objects.filter(partner=partner, as_of=as_of, family__in=INSIGHT_FAMILIES)
    per_customer = (
        rows.values("customer_id", "customer__name", "customer__external_id")
        .annotate(
            unused=Sum(Greatest(F("sold_licenses") - F("assigned_licenses"), Value(0), output_field=IntegerField())),
            sold=Sum("sold_licenses"),
        )
        .filter(unused__gt=0)
        .order_by("-unused", "customer__name", "customer_id")
    )
    return list(per_customer[:limit])
