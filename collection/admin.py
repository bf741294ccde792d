"""Pulls and customers' collection state in Django's admin, read-only; never a connection's secret."""

from django.contrib import admin

from collection.models import CustomerSync, PullRun, VendorConnection
from core.admin import ReadOnlyAdmin


@admin.register(VendorConnection)
class VendorConnectionAdmin(ReadOnlyAdmin[VendorConnection]):
    list_display = ["partner", "tenant_id", "client_id", "updated_at", "tested_at"]
    exclude = ["encrypted_secret"]


@admin.register(PullRun)
class PullRunAdmin(ReadOnlyAdmin[PullRun]):
    list_display = ["pk", "partner", "trigger", "status", "started_at", "customers_done", "customers_failed"]
    list_filter = ["status", "trigger", "partner"]


@admin.register(CustomerSync)
class CustomerSyncAdmin(ReadOnlyAdmin[CustomerSync]):
    list_display = ["tenant_id", "name", "partner", "last_success_at", "error_kind", "failures"]
    list_filter = ["error_kind", "partner"]
    search_fields = ["tenant_id", "name"]
