"""REST API of metric snapshots (SPEC §2) at every grain, inactive users, and recompute runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, ClassVar

from django.db.models import QuerySet
from rest_framework import mixins
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Partner
from accounts.roles import Action
from core.api import PartnerViewSet
from customers.api.views import CustomerRowsViewSet, customer_of, row_owner
from customers.models import EndUser
from metrics import selectors
from metrics.api.serializers import (
    COUNT_ORDERING,
    LICENSE_ORDERING,
    FamilyQuerySerializer,
    FamilySnapshotSerializer,
    InactiveQuerySerializer,
    InactiveUserSerializer,
    PortfolioSnapshotSerializer,
    RecomputeQuerySerializer,
    RecomputeRunSerializer,
    SkuQuerySerializer,
    SkuSnapshotSerializer,
    WorkloadQuerySerializer,
    WorkloadSnapshotSerializer,
)
from metrics.models import FamilySnapshot, PortfolioSnapshot, RecomputeRun, SkuSnapshot, WorkloadSnapshot


def require_snapshot(*, partner: Partner, as_of: dt.date | None) -> None:
    """A date asked for must have a snapshot, as for the CSV downloads: else a 404 naming the
    latest date that has one. Not asking (None) means the latest date, and is always fine."""
    if as_of is None or selectors.snapshot_date_exists(partner=partner, as_of=as_of):
        return
    latest = selectors.latest_snapshot_date(partner=partner)
    if latest is None:
        raise NotFound(f"No snapshot for {as_of:%Y-%m-%d}; there is no metric snapshot yet.")
    raise NotFound(f"No snapshot for {as_of:%Y-%m-%d}; the latest date with one is {latest:%Y-%m-%d}.")


class SnapshotViewSet(mixins.ListModelMixin, PartnerViewSet[Partner]):
    """Snapshots of the dates asked for (`?as_of=`, `?from=&to=`, default the latest snapshot
    date). An `as_of` without a snapshot is a 404; a range may hold dates without one (they have
    no rows). `query_filters` maps query fields to lookups."""

    required_action = Action.VIEW_INSIGHTS
    query_filters: ClassVar[dict[str, str]] = {}
    # The selector of the grain: (partner, span[, customer]) -> snapshots.
    snapshot_list: ClassVar[Callable[..., QuerySet[Any]]]

    def partner_queryset(self, partner: Partner) -> QuerySet[Any]:
        params = self.params
        owner = row_owner(self)  # the customer first: another partner's is a 404 whatever the date
        require_snapshot(partner=partner, as_of=params.get("as_of"))
        span = selectors.snapshot_span(
            partner=partner, as_of=params.get("as_of"), first=params.get("from"), last=params.get("to")
        )
        lookups = {lookup: params[field] for field, lookup in self.query_filters.items() if field in params}
        return self.snapshot_list(partner=partner, span=span, **owner).filter(**lookups)


class SkuMetricsViewSet(SnapshotViewSet, CustomerRowsViewSet):
    """A customer's metrics per SKU (office365 and dynamics365 families)."""

    model = SkuSnapshot
    serializer_class = SkuSnapshotSerializer
    snapshot_list = staticmethod(selectors.sku_snapshot_list)
    query_serializer_class = SkuQuerySerializer
    query_filters = {"product_family": "product_family", "sku": "sku"}
    ordering_fields = [*COUNT_ORDERING, *LICENSE_ORDERING, "product_family", "sku"]
    ordering = ["as_of", "product_family", "sku"]


class WorkloadMetricsViewSet(SnapshotViewSet, CustomerRowsViewSet):
    """A customer's metrics per workload."""

    model = WorkloadSnapshot
    serializer_class = WorkloadSnapshotSerializer
    snapshot_list = staticmethod(selectors.workload_snapshot_list)
    query_serializer_class = WorkloadQuerySerializer
    query_filters = {"workload": "workload"}
    ordering_fields = [*COUNT_ORDERING, "workload"]
    ordering = ["as_of", "workload"]


class FamilyMetricsViewSet(SnapshotViewSet, CustomerRowsViewSet):
    """A customer's metrics per product family: licenses summed, users counted once."""

    model = FamilySnapshot
    serializer_class = FamilySnapshotSerializer
    snapshot_list = staticmethod(selectors.family_snapshot_list)
    query_serializer_class = FamilyQuerySerializer
    query_filters = {"product_family": "family"}
    ordering_fields = [*COUNT_ORDERING, *LICENSE_ORDERING, "family"]
    ordering = ["as_of", "family"]


class PortfolioViewSet(SnapshotViewSet):
    """The partner's whole portfolio per product family: sums over its customers, percentages
    from the sums."""

    model = PortfolioSnapshot
    serializer_class = PortfolioSnapshotSerializer
    snapshot_list = staticmethod(selectors.portfolio_snapshot_list)
    query_serializer_class = FamilyQuerySerializer
    query_filters = {"product_family": "family"}
    ordering_fields = [*COUNT_ORDERING, *LICENSE_ORDERING, "family", "customers"]
    ordering = ["as_of", "family"]


class InactiveUserViewSet(PartnerViewSet[Partner]):
    """Inactive licensed users (SPEC §8): users entitled at `as_of` with no activity on any
    workload of their licenses in the last `days` days, never-active users included; sorted by
    customer name, then user principal name. An `as_of` without a snapshot is a 404."""

    required_action = Action.VIEW_INSIGHTS
    model = EndUser
    serializer_class = InactiveUserSerializer
    query_serializer_class = InactiveQuerySerializer

    def list(self, request: Request, **kwargs: Any) -> Response:
        # One raw SQL statement that takes the partner (and the customer looked up inside it),
        # not a queryset: the base's get_queryset has nothing to filter here.
        partner, params, customer = self.partner, self.params, customer_of(self)
        require_snapshot(partner=partner, as_of=params.get("as_of"))
        as_of = params.get("as_of") or selectors.latest_snapshot_date(partner=partner)
        days = params.get("days") or selectors.insight_settings(partner=partner).inactivity_days
        rows = (
            []
            if as_of is None
            else selectors.inactive_user_list(partner=partner, as_of=as_of, days=days, customer=customer)
        )
        page = self.paginate_queryset(list(rows))  # type: ignore[arg-type]  # DRF pages any sequence
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class CustomerInactiveUserViewSet(InactiveUserViewSet, CustomerRowsViewSet):
    """One customer's inactive licensed users (SPEC §8)."""


class RecomputeRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PartnerViewSet[Partner]):
    """The ledger of metric recomputations: one row per business date."""

    model = RecomputeRun
    required_action = Action.TRIGGER_RECOMPUTE  # as the Data status page
    serializer_class = RecomputeRunSerializer
    query_serializer_class = RecomputeQuerySerializer
    ordering_fields = ["as_of", "started_at", "status"]
    ordering = ["-started_at", "-as_of"]

    def partner_queryset(self, partner: Partner) -> QuerySet[RecomputeRun]:
        runs = selectors.recompute_run_list(partner=partner)
        return runs.filter(status=self.params["status"]) if "status" in self.params else runs
