"""Serializers of the collection API: where each customer's collection stands, and the pulls.
The vendor connection has no serializer: the API never returns it (SPEC §9)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from collection.models import CustomerSync, PullRun


class CustomerSyncSerializer(serializers.ModelSerializer[CustomerSync]):
    customer_id = serializers.IntegerField(
        source="customer.pk", read_only=True, allow_null=True, default=None, help_text="The customer's internal id."
    )
    imported = serializers.DictField(read_only=True, help_text="What the last successful pull imported.")

    class Meta:
        model = CustomerSync
        fields = [
            "tenant_id",
            "customer_id",
            "name",
            "last_attempt_at",
            "last_success_at",
            "last_report_day",
            "error_kind",
            "error",
            "failures",
            "imported",
            "concealed_names",
        ]


class PullRunSerializer(serializers.ModelSerializer[PullRun]):
    class Meta:
        model = PullRun
        fields = [
            "id",
            "trigger",
            "night",
            "customer_tenant_id",
            "status",
            "started_at",
            "finished_at",
            "customers_total",
            "customers_done",
            "customers_failed",
            "requests",
            "retries",
            "throttled",
            "error_kind",
            "error",
        ]


class SyncQuerySerializer(serializers.Serializer[Any]):
    failing = serializers.BooleanField(required=False, help_text="Only customers whose last pull failed.")
