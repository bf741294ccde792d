"""Tenant data in Django's admin, for platform operators: lists, search and detail pages only
(core.admin.ReadOnlyAdmin). Changes go through imports and services."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from customers.models import Customer, Product, Subscription


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin[Customer]):
    list_display = ["name", "external_id", "domain", "partner"]
    list_filter = ["partner"]
    search_fields = ["name", "external_id", "domain"]


@admin.register(Product)
class ProductAdmin(ReadOnlyAdmin[Product]):
    list_display = ["sku", "name", "family", "partner"]
    list_filter = ["family", "partner"]
    search_fields = ["sku", "name"]


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin[Subscription]):
    list_display = ["external_id", "customer", "product", "quantity", "status", "is_trial", "source"]
    list_filter = ["status", "source", "is_trial", "partner"]
    list_select_related = ["customer", "product"]
    search_fields = ["external_id", "customer__name"]
    raw_id_fields = ["customer", "product"]
