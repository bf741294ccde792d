"""Reads of metric snapshots and runs. Every selector takes the partner as a required keyword."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F, QuerySet

from accounts.models import Partner
from customers.models import Customer
from metrics.models import Counts, FamilySnapshot, PortfolioSnapshot, RecomputeRun, SkuSnapshot, WorkloadSnapshot


def snapshot_dates(*, partner: Partner) -> list[dt.date]:
    """The dates that have published snapshots, newest first."""
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    return list(published.order_by("-as_of").values_list("as_of", flat=True))


def latest_snapshot_date(*, partner: Partner) -> dt.date | None:
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    return published.order_by("-as_of").values_list("as_of", flat=True).first()


def recompute_run_list(*, partner: Partner) -> QuerySet[RecomputeRun]:
    return RecomputeRun.objects.filter(partner=partner).order_by("-started_at", "-as_of")


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
