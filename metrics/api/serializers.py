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

# SPEC §2 in one line per number, as the schema describes them. "Counted": an active, non-trial
# subscription within its start and end dates; the window: the 28 days as_of-27 … as_of.
AS_OF = "The snapshot's date; activity counts over the 28-day window as_of-27 … as_of."
DEPLOYMENT = "100 × assigned_licenses / sold_licenses, one decimal; null when sold_licenses is 0."
USAGE = "100 × active_users / entitled_users, one decimal (may pass 100); null when entitled_users is 0."
SKU_TEXTS = {
    "as_of": AS_OF,
    "sold_licenses": "Seats of the counted subscriptions of this SKU, from every source (all partners and direct).",
    "own_sold_licenses": "Seats of the counted subscriptions of this SKU sold by this partner (source own).",
    "assigned_licenses": (
        "Assignments current at as_of, active or suspended, on counted subscriptions of this SKU "
        "(a user with two counts twice)."
    ),
    "entitled_users": (
        "Total users: distinct users with an active assignment current at as_of on a counted subscription of this SKU."
    ),
    "active_users": (
        "Distinct users holding an assignment of this SKU (any subscription, any state) overlapping the window, "
        "with activity in the window on a workload the SKU includes."
    ),
}
FAMILY_TEXTS = {
    "as_of": AS_OF,
    "sold_licenses": "Sum of sold_licenses over the family's SKUs (seats of counted subscriptions, every source).",
    "own_sold_licenses": "Sum of own_sold_licenses over the family's SKUs (seats sold by this partner).",
    "assigned_licenses": "Sum of assigned_licenses over the family's SKUs (assignments, active or suspended).",
    "entitled_users": "Distinct entitled users over the family's SKUs: a user with two of its SKUs counts once.",
    "active_users": "Distinct active users over the family's SKUs: a user with two of its SKUs counts once.",
}
PORTFOLIO_TEXTS = {
    "as_of": AS_OF,
    "customers": "Customers of this partner with numbers in this family on that date.",
    **{
        name: f"Sum over the partner's customers of their family-grain {name}."
        for name in ["sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users"]
    },
}
WORKLOAD_TEXTS = {
    "as_of": AS_OF,
    "workload": "The workload; only SKUs of the office365 and dynamics365 families count here.",
    "entitled_users": (
        "Distinct users with an active assignment current at as_of on a counted subscription of a SKU "
        "that includes this workload."
    ),
    "active_users": (
        "Distinct users active on this workload in the window who hold an assignment of a SKU including it "
        "overlapping the window; for yammer, every user with Yammer activity."
    ),
}
FAMILY = "Product family (office365 or dynamics365; other families are not shown)."


def described(texts: dict[str, str]) -> dict[str, dict[str, str]]:
    """`Meta.extra_kwargs` giving model fields their help text (the schema's description)."""
    return {name: {"help_text": text} for name, text in texts.items()}


class SkuSnapshotSerializer(serializers.ModelSerializer[SkuSnapshot]):
    sku = serializers.CharField(read_only=True, help_text="The SKU (part number), e.g. ENTERPRISEPACK.")
    sku_name = serializers.CharField(read_only=True, help_text="The SKU's product name.")
    product_family = serializers.ChoiceField(choices=INSIGHT_FAMILY_CHOICES, read_only=True, help_text=FAMILY)
    deployment_pct = PercentField(help_text=DEPLOYMENT)
    usage_pct = PercentField(help_text=USAGE)

    class Meta:
        model = SkuSnapshot
        fields = ["as_of", "product_family", "sku", "sku_name", *LICENSES]
        extra_kwargs = described(SKU_TEXTS)


class WorkloadSnapshotSerializer(serializers.ModelSerializer[WorkloadSnapshot]):
    usage_pct = PercentField(help_text=USAGE)

    class Meta:
        model = WorkloadSnapshot
        fields = ["as_of", "workload", *USERS]
        extra_kwargs = described(WORKLOAD_TEXTS)


class FamilySnapshotSerializer(serializers.ModelSerializer[FamilySnapshot]):
    product_family = serializers.ChoiceField(
        source="family", choices=INSIGHT_FAMILY_CHOICES, read_only=True, help_text=FAMILY
    )
    deployment_pct = PercentField(help_text=f"{DEPLOYMENT} From the sums, never averaged.")
    usage_pct = PercentField(help_text=f"{USAGE} From the distinct counts, never averaged.")

    class Meta:
        model = FamilySnapshot
        fields = ["as_of", "product_family", *LICENSES]
        extra_kwargs = described(FAMILY_TEXTS)


class PortfolioSnapshotSerializer(FamilySnapshotSerializer):
    deployment_pct = PercentField(help_text=f"{DEPLOYMENT} A ratio of the sums, not a mean of ratios.")
    usage_pct = PercentField(help_text=f"{USAGE} A ratio of the sums, not a mean of ratios.")

    class Meta:
        model = PortfolioSnapshot
        fields = ["as_of", "product_family", "customers", *LICENSES]
        extra_kwargs = described(PORTFOLIO_TEXTS)


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
    as_of = serializers.DateField(
        required=False,
        help_text="The date (YYYY-MM-DD); one without a snapshot is a 404. Default: the latest snapshot date.",
    )
    days = serializers.ChoiceField(
        choices=InactivityDays.choices,
        required=False,
        help_text="Idle for this many days. Default: the partner's setting.",
    )


class DatesQuerySerializer(serializers.Serializer[Any]):
    """`?as_of=`, or `?from=&to=` (both included); neither: the latest snapshot date."""

    as_of = serializers.DateField(
        required=False,
        help_text="One date (YYYY-MM-DD); one without a snapshot is a 404. Default: the latest snapshot date.",
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # "from" is a Python keyword, so these two cannot be declared as class attributes.
        fields["from"] = serializers.DateField(
            required=False, help_text="First date of a range, included; dates without a snapshot have no rows."
        )
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
