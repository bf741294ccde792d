"""Read-mostly admin views of tenant data for platform operators (unscoped: operators only)."""

from django.contrib import admin

from customers.models import Customer, Product, Subscription


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["name", "external_id", "domain", "partner"]
    list_filter = ["partner"]
    search_fields = ["name", "external_id", "domain"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ["sku", "name", "family", "partner"]
    list_filter = ["family", "partner"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    list_display = ["external_id", "customer", "product", "quantity", "status", "is_trial", "source"]
    list_filter = ["status", "source", "is_trial", "partner"]
    raw_id_fields = ["customer", "product"]
