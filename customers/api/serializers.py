"""Serializers of the customer API: customers and their own subscriptions."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from customers.models import Customer, Subscription


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    user_count = serializers.IntegerField(read_only=True, help_text="End users of the customer.")
    own_subscription_count = serializers.IntegerField(read_only=True, help_text="Subscriptions sold by this partner.")

    class Meta:
        model = Customer
        fields = ["id", "external_id", "name", "domain", "user_count", "own_subscription_count"]


class SubscriptionSerializer(serializers.ModelSerializer[Subscription]):
    sku = serializers.CharField(source="product.sku", read_only=True)
    sku_name = serializers.CharField(source="product.name", read_only=True)
    product_family = serializers.CharField(source="product.family", read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "external_id",
            "sku",
            "sku_name",
            "product_family",
            "quantity",
            "status",
            "is_trial",
            "start_date",
            "end_date",
        ]


class CustomerQuerySerializer(serializers.Serializer[Any]):
    search = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Part of the name or the domain."
    )
