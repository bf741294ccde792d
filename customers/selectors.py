"""Reads of customer data. Every selector takes the partner as a required keyword."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import (
    Case,
    Count,
    ExpressionWrapper,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Cast, Coalesce, Lower
from django.shortcuts import get_object_or_404

from accounts.models import Partner
from customers.models import (
    INSIGHT_FAMILIES,
    AssignmentState,
    Customer,
    EndUser,
    LicenseAssignment,
    Product,
    ProductWorkload,
    Source,
    Subscription,
    SubscriptionStatus,
)


def _count_per_customer(rows: QuerySet[Any]) -> Coalesce:
    """A correlated COUNT(*) of `rows` for the outer customer, 0 when there are none."""
    counted = rows.filter(customer=OuterRef("pk")).order_by().values("customer").annotate(n=Count("*"))
    return Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), 0)


def customer_list(*, partner: Partner, search: str = "") -> QuerySet[Customer]:
    """All customers of the partner, with or without data (SPEC §5), filtered by name or domain."""
    customers = Customer.objects.filter(partner=partner)
    if search:
        customers = customers.filter(Q(name__icontains=search) | Q(domain__icontains=search))
    # Two correlated counts, never one join over both relations (a join explosion).
    return customers.annotate(
        user_count=_count_per_customer(EndUser.objects.all()),
        own_subscription_count=_count_per_customer(Subscription.objects.filter(source=Source.OWN)),
    ).order_by("name", "external_id")


# Sort keys of the customer list -> the annotation or field they order by.
CUSTOMER_SORTS = {
    "name": "name_key",
    "sold": "sold",
    "assigned": "assigned",
    "entitled": "entitled",
    "active": "active",
    "deployment": "deployment",
    "usage": "usage",
    "unused": "unused",
}


def _percentage(numerator: str, denominator: str) -> Case:
    """The exact ratio as a float for sorting; NULL when undefined (sorted last)."""
    ratio = ExpressionWrapper(100.0 * Cast(numerator, FloatField()) / F(denominator), output_field=FloatField())
    return Case(When(**{f"{denominator}__gt": 0}, then=ratio), output_field=FloatField())


def customer_overview(
    *,
    partner: Partner,
    as_of: dt.date | None,
    family: str,
    search: str = "",
    usage_band: str = "",
    sort: str = "name",
) -> QuerySet[Customer]:
    """Every customer of the partner (SPEC §5: with or without data) with its family-grain
    numbers at `as_of` for `family`: one LEFT JOIN, so the page costs the same for 20 or 2,000
    customers. `sort` is a key of CUSTOMER_SORTS, "-" first for descending."""
    customers = Customer.objects.filter(partner=partner)
    if search:
        customers = customers.filter(Q(name__icontains=search) | Q(domain__icontains=search))
    customers = (
        customers.annotate(
            family_row=FilteredRelation(
                "family_snapshots", condition=Q(family_snapshots__as_of=as_of, family_snapshots__family=family)
            ),
            sold=F("family_row__sold_licenses"),
            own_sold=F("family_row__own_sold_licenses"),
            assigned=F("family_row__assigned_licenses"),
            entitled=F("family_row__entitled_users"),
            active=F("family_row__active_users"),
            name_key=Lower("name"),  # people read A to Z without case; the CSV sorts by code point
        )
        .annotate(
            # Unused as the pages show it (Licenses.unused_licenses): never below 0 when over-deployed,
            # and NULL without data (PostgreSQL's GREATEST would turn NULL into 0).
            unused=Case(
                When(sold__gt=F("assigned"), then=F("sold") - F("assigned")),
                When(sold__isnull=False, then=0),
                output_field=IntegerField(),
            ),
        )
        .annotate(deployment=_percentage("assigned", "sold"), usage=_percentage("active", "entitled"))
    )
    if usage_band:
        customers = customers.alias(active_x100=F("active") * 100).filter(_band_condition(usage_band))
    field = CUSTOMER_SORTS.get(sort.removeprefix("-"), "name")
    order = F(field).desc(nulls_last=True) if sort.startswith("-") else F(field).asc(nulls_last=True)
    return customers.order_by(order, "name_key", "name", "external_id")


def _band_condition(band: str) -> Q:
    """Customers whose exact usage ratio falls in a SPEC §8 band (metrics.numbers.BANDS),
    compared in integers: 100 × active against bound × entitled."""
    if band == "none":
        return Q(entitled__isnull=True) | Q(entitled=0)
    if band == "100+":
        return Q(entitled__gt=0, active__gte=F("entitled"))
    low, high = (int(bound) for bound in band.split("-"))
    return Q(entitled__gt=0, active_x100__gte=F("entitled") * low, active_x100__lt=F("entitled") * high)


def customer_get(*, partner: Partner, customer_id: int) -> Customer:
    """One customer of the partner; another partner's id is a 404, as if it did not exist."""
    return get_object_or_404(Customer.objects.filter(partner=partner), pk=customer_id)


def own_subscription_list(*, partner: Partner, customer: Customer) -> QuerySet[Subscription]:
    """The partner's own subscriptions of one customer: the 'see only your own licenses' view."""
    return (
        Subscription.objects.filter(partner=partner, customer=customer, source=Source.OWN)
        .select_related("product")
        .order_by("product__name", "external_id")
    )


RENEWAL_DAYS = 30
# A subscription still running (or in grace) can renew or end; cancelled and expired ones cannot.
_RENEWABLE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.GRACE)


def renewal_list(*, partner: Partner, as_of: dt.date, customer: Customer | None = None) -> QuerySet[Subscription]:
    """Subscriptions (trials included) whose end date falls in as_of+1 … as_of+30 (SPEC §8),
    soonest first, each with `assigned` (assignments current at as_of, active or suspended)
    and `unused` seats: the moment to right-size."""
    subscriptions = Subscription.objects.filter(
        partner=partner,
        status__in=_RENEWABLE,
        end_date__gt=as_of,
        end_date__lte=as_of + dt.timedelta(days=RENEWAL_DAYS),
    )
    if customer is not None:
        subscriptions = subscriptions.filter(customer=customer)
    current = LicenseAssignment.objects.filter(
        subscription=OuterRef("pk"),
        state__in=(AssignmentState.ACTIVE, AssignmentState.SUSPENDED),
        assigned_on__lte=as_of,
    ).filter(Q(removed_on__isnull=True) | Q(removed_on__gt=as_of))
    assigned = current.order_by().values("subscription").annotate(n=Count("*")).values("n")
    return (
        subscriptions.annotate(assigned=Coalesce(Subquery(assigned, output_field=IntegerField()), 0))
        .annotate(unused=F("quantity") - F("assigned"))
        .select_related("product", "customer")
        .order_by("end_date", "customer__name", "external_id")
    )


def customer_count(*, partner: Partner) -> int:
    return Customer.objects.filter(partner=partner).count()


def product_list(*, partner: Partner, families: tuple[str, ...] = tuple(INSIGHT_FAMILIES)) -> QuerySet[Product]:
    """The SKUs the partner sees (its own and the catalog entries it has not replaced) of
    `families` (the shown ones by default), by family and name."""
    return Product.objects.visible_to(partner).filter(family__in=families).order_by("family", "name")


def sku_choices(*, partner: Partner) -> list[tuple[str, str]]:
    """(sku, "name (sku)") of the shown-family SKUs the partner sees, by name: the SKU filter."""
    products = product_list(partner=partner).order_by("name", "sku")
    return [(sku, f"{name} ({sku})") for sku, name in products.values_list("sku", "name")]


def family_workload_names(*, partner: Partner, family: str) -> QuerySet[ProductWorkload, Any]:
    """The workloads that SKUs of `family` visible to the partner include (the workload grain's
    rows of a family), as a `workload` values query."""
    products = Product.objects.visible_to(partner).filter(family=family)
    return ProductWorkload.objects.filter(product__in=products).values("workload")
