"""Serializers of the metric API: snapshots at every grain, recompute runs, inactive users, and
the query strings they take.

Counts are the stored integers; percentages are the strings of `metrics.numbers.pct` (through the
snapshots' `usage_pct` / `deployment_pct`), so API, pages and CSV agree; an undefined percentage
is JSON null (the CSV's empty cell).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from customers.models import INSIGHT_FAMILIES, Workload
from metrics.models import (
    FamilySnapshot,
    InactivityDays,
    PortfolioSnapshot,
    RecomputeRun,
    SkuSnapshot,
    WorkloadSnapshot,
)


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "pattern": r"^[0-9]+\.[0-9]$",
        "example": "87.5",
        "description": "Percent, rounded half away from zero to one decimal; null when the denominator is 0.",
    }
)
class PercentField(serializers.Field[str, str, str | None, Any]):
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


class SkuSnapshotSerializer(serializers.ModelSerializer[SkuSnapshot]):
    sku = serializers.CharField(read_only=True)
    sku_name = serializers.CharField(read_only=True)
    product_family = serializers.ChoiceField(choices=INSIGHT_FAMILY_CHOICES, read_only=True)
    deployment_pct = PercentField()
    usage_pct = PercentField()

    class Meta:
        model = SkuSnapshot
        fields = ["as_of", "product_family", "sku", "sku_name", *LICENSES]


class WorkloadSnapshotSerializer(serializers.ModelSerializer[WorkloadSnapshot]):
    usage_pct = PercentField()

    class Meta:
        model = WorkloadSnapshot
        fields = ["as_of", "workload", *USERS]


class FamilySnapshotSerializer(serializers.ModelSerializer[FamilySnapshot]):
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


class RecomputeRunSerializer(serializers.ModelSerializer[RecomputeRun]):
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


class InactiveUserSerializer(serializers.Serializer[Any]):
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


class InactiveQuerySerializer(serializers.Serializer[Any]):
    as_of = serializers.DateField(required=False, help_text="The date (YYYY-MM-DD). Default: the latest snapshot date.")
    days = serializers.ChoiceField(
        choices=InactivityDays.choices,
        required=False,
        help_text="Idle for this many days. Default: the partner's setting.",
    )


class DatesQuerySerializer(serializers.Serializer[Any]):
    """`?as_of=`, or `?from=&to=` (both included); neither: the latest snapshot date."""

    as_of = serializers.DateField(required=False, help_text="One date (YYYY-MM-DD). Default: the latest snapshot date.")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
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


class RecomputeQuerySerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=RecomputeRun.Status.choices, required=False)
