"""Reads of customer data. Every selector takes the partner as a required keyword."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from accounts.models import Partner
from customers.models import Customer, EndUser, ImportRun, Source, Subscription


def _count_per_customer(rows: QuerySet) -> Coalesce:
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


def import_run_list(*, partner: Partner) -> QuerySet[ImportRun]:
    return ImportRun.objects.filter(partner=partner).select_related("started_by")


def import_run_get(*, partner: Partner, run_id: int) -> ImportRun:
    return get_object_or_404(import_run_list(partner=partner), pk=run_id)
