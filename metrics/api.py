"""REST API of metric snapshots (SPEC §2) at every grain, and of recompute runs.

Counts are the stored integers; percentages are the strings of `metrics.numbers.pct` (through the
snapshots' `usage_pct` / `deployment_pct`), so API, pages and CSV agree; an undefined percentage
is JSON null (the CSV's empty cell).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Partner
from accounts.roles import Action
from customers.api import CustomerRowsViewSet, row_owner
from customers.models import INSIGHT_FAMILIES, EndUser, Workload
from metrics import selectors
from metrics.models import (
    FamilySnapshot,
    InactivityDays,
    PortfolioSnapshot,
    RecomputeRun,
    SkuSnapshot,
    WorkloadSnapshot,
)
from partnerinsights.api import PartnerViewSet


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "pattern": r"^[0-9]+\.[0-9]$",
        "example": "87.5",
        "description": "Percent, rounded half away from zero to one decimal; null when the denominator is 0.",
    }
)
class PercentField(serializers.Field):
    """A percentage as `pct()` writes it ("87.5"); null instead of its empty string."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: str) -> str | None:
        return value or None


# The numbers in the order of the CSV export (SPEC §7).
USERS = ["entitled_users", "active_users", "usage_pct"]
LICENSES = ["sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users"]
LICENSES += ["deployment_pct", "usage_pct"]
COUNT_ORDERING = ["as_of", "entitled_users", "active_users"]
LICENSE_ORDERING = ["sold_licenses", "own_sold_licenses", "assigned_licenses"]
INSIGHT_FAMILY_CHOICES = [(family.value, family.label) for family in INSIGHT_FAMILIES]


class SkuSnapshotSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(read_only=True)
    sku_name = serializers.CharField(read_only=True)
    product_family = serializers.ChoiceField(choices=INSIGHT_FAMILY_CHOICES, read_only=True)
    deployment_pct = PercentField()
    usage_pct = PercentField()

    class Meta:
        model = SkuSnapshot
        fields = ["as_of", "product_family", "sku", "sku_name", *LICENSES]


class WorkloadSnapshotSerializer(serializers.ModelSerializer):
    usage_pct = PercentField()

    class Meta:
        model = WorkloadSnapshot
        fields = ["as_of", "workload", *USERS]


class FamilySnapshotSerializer(serializers.ModelSerializer):
    product_family = serializers.ChoiceField(source="family", choices=INSIGHT_FAMILY_CHOICES, read_only=True)
    deployment_pct = PercentField()
    usage_pct = PercentField()

    class Meta:
        model = FamilySnapshot
        fields = ["as_of", "product_family", *LICENSES]


class PortfolioSnapshotSerializer(FamilySnapshotSerializer):
    class Meta:
        model = PortfolioSnapshot
        fields = ["as_of", "product_family", "customers", *LICENSES]


class RecomputeRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = RecomputeRun
        fields = [
            "id",
            "as_of",
            "status",
            "trigger",
            "attempts",
            "started_at",
            "finished_at",
            "published_at",
            "duration_ms",
            "error",
        ]


class InactiveUserSerializer(serializers.Serializer):
    """A licensed user with no activity on the workloads of their licenses for the chosen days."""

    user_id = serializers.IntegerField(help_text="The end user's internal id.")
    upn = serializers.CharField(help_text="User principal name.")
    display_name = serializers.CharField(allow_blank=True)
    customer_id = serializers.IntegerField(help_text="The customer's internal id.")
    customer_name = serializers.CharField()
    skus = serializers.ListField(child=serializers.CharField(), help_text="The SKUs the user is entitled to.")
    last_activity = serializers.DateField(
        allow_null=True, help_text="Last activity on a workload of those SKUs up to as_of; null: never."
    )
    monthly_cost = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, help_text="Unit prices of the SKUs; null when none is set."
    )


class InactiveQuerySerializer(serializers.Serializer):
    as_of = serializers.DateField(required=False, help_text="The date (YYYY-MM-DD). Default: the latest snapshot date.")
    days = serializers.ChoiceField(
        choices=InactivityDays.choices,
        required=False,
        help_text="Idle for this many days. Default: the partner's setting.",
    )


class DatesQuerySerializer(serializers.Serializer):
    """`?as_of=`, or `?from=&to=` (both included); neither: the latest snapshot date."""

    as_of = serializers.DateField(required=False, help_text="One date (YYYY-MM-DD). Default: the latest snapshot date.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # "from" is a Python keyword, so these two cannot be declared as class attributes.
        fields["from"] = serializers.DateField(required=False, help_text="First date of a range, included.")
        fields["to"] = serializers.DateField(required=False, help_text="Last date of a range, included.")
        return fields

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "as_of" in data and ("from" in data or "to" in data):
            raise serializers.ValidationError("Give either as_of or from and to, not both.")
        if ("from" in data) != ("to" in data):
            raise serializers.ValidationError("from and to go together.")
        if "from" in data and data["from"] > data["to"]:
            raise serializers.ValidationError("from is after to.")
        return data


class FamilyQuerySerializer(DatesQuerySerializer):
    product_family = serializers.ChoiceField(choices=INSIGHT_FAMILY_CHOICES, required=False)


class SkuQuerySerializer(FamilyQuerySerializer):
    sku = serializers.CharField(required=False, max_length=100, help_text="One SKU, e.g. ENTERPRISEPACK.")


class WorkloadQuerySerializer(DatesQuerySerializer):
    workload = serializers.ChoiceField(choices=Workload.choices, required=False)


class RecomputeQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RecomputeRun.Status.choices, required=False)


class SnapshotViewSet(mixins.ListModelMixin, PartnerViewSet):
    """Snapshots of the dates asked for (`?as_of=`, `?from=&to=`, default the latest snapshot
    date); a date without a snapshot has no rows. `query_filters` maps query fields to lookups."""

    query_filters: ClassVar[dict[str, str]] = {}
    # The selector of the grain: (partner, span[, customer]) -> snapshots.
    snapshot_list: ClassVar[Callable[..., QuerySet]]

    def partner_queryset(self, partner: Partner) -> QuerySet:
        params = self.params
        span = selectors.snapshot_span(
            partner=partner, as_of=params.get("as_of"), first=params.get("from"), last=params.get("to")
        )
        lookups = {lookup: params[field] for field, lookup in self.query_filters.items() if field in params}
        return self.snapshot_list(partner=partner, span=span, **row_owner(self)).filter(**lookups)


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


class InactiveUserViewSet(PartnerViewSet):
    """Inactive licensed users (SPEC §8): users entitled at `as_of` with no activity on any
    workload of their licenses in the last `days` days, never-active users included; sorted by
    customer name, then user principal name."""

    model = EndUser
    serializer_class = InactiveUserSerializer
    query_serializer_class = InactiveQuerySerializer

    def list(self, request: Request, **kwargs: Any) -> Response:
        # One raw SQL statement that takes the partner (and the customer looked up inside it),
        # not a queryset: the base's get_queryset has nothing to filter here.
        partner, params = self.partner, self.params
        as_of = params.get("as_of") or selectors.latest_snapshot_date(partner=partner)
        days = params.get("days") or selectors.insight_settings(partner=partner).inactivity_days
        rows = (
            []
            if as_of is None
            else selectors.inactive_user_list(partner=partner, as_of=as_of, days=days, **row_owner(self))
        )
        page = self.paginate_queryset(list(rows))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class CustomerInactiveUserViewSet(InactiveUserViewSet, CustomerRowsViewSet):
    """One customer's inactive licensed users (SPEC §8)."""


class RecomputeRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PartnerViewSet):
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


_CUSTOMER = "customers/<int:customer_id>/metrics"
urlpatterns = [
    path(f"{_CUSTOMER}/sku/", SkuMetricsViewSet.as_view({"get": "list"}), name="customer-metrics-sku"),
    path(f"{_CUSTOMER}/workload/", WorkloadMetricsViewSet.as_view({"get": "list"}), name="customer-metrics-workload"),
    path(f"{_CUSTOMER}/family/", FamilyMetricsViewSet.as_view({"get": "list"}), name="customer-metrics-family"),
    path("portfolio/", PortfolioViewSet.as_view({"get": "list"}), name="portfolio"),
    path("inactive-users/", InactiveUserViewSet.as_view({"get": "list"}), name="inactive-user-list"),
    path(
        "customers/<int:customer_id>/inactive-users/",
        CustomerInactiveUserViewSet.as_view({"get": "list"}),
        name="customer-inactive-user-list",
    ),
    path("recompute-runs/", RecomputeRunViewSet.as_view({"get": "list"}), name="recompute-run-list"),
    path("recompute-runs/<int:pk>/", RecomputeRunViewSet.as_view({"get": "retrieve"}), name="recompute-run-detail"),
]
