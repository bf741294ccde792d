"""Import runs in Django's admin, for platform operators (read-only)."""

from django.contrib import admin

from imports.models import ImportRun


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin[ImportRun]):
    list_display = ["pk", "partner", "origin", "status", "started_at", "error_count"]
    list_filter = ["status", "origin", "partner"]
    readonly_fields = [f.name for f in ImportRun._meta.fields]
