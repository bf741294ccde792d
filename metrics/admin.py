"""Recompute runs and partners' insight settings in Django's admin, across partners, read-only."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from metrics.models import InsightSettings, RecomputeRun, SkuSetting


@admin.register(RecomputeRun)
class RecomputeRunAdmin(ReadOnlyAdmin[RecomputeRun]):
    list_display = ["as_of", "partner", "status", "trigger", "attempts", "started_at", "duration_ms", "published_at"]
    list_filter = ["status", "trigger", "partner"]
    list_select_related = ["partner"]
    search_fields = ["partner__slug", "error"]
    date_hierarchy = "as_of"


@admin.register(InsightSettings)
class InsightSettingsAdmin(ReadOnlyAdmin[InsightSettings]):
    list_display = ["partner", "low_usage_pct", "inactivity_days", "currency", "updated_at"]
    list_select_related = ["partner"]
    search_fields = ["partner__slug"]


@admin.register(SkuSetting)
class SkuSettingAdmin(ReadOnlyAdmin[SkuSetting]):
    list_display = ["sku", "partner", "monthly_price", "excluded"]
    list_filter = ["excluded", "partner"]
    list_select_related = ["partner"]
    search_fields = ["sku", "partner__slug"]
