"""Import runs in Django's admin, for platform operators: across partners, strictly read-only
(nothing added, changed or deleted here), and a run's stored upload is listed, never served."""

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from core.admin import ReadOnlyAdmin
from imports.models import ImportRun


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin[ImportRun]):
    list_display = [
        "pk",
        "partner",
        "origin",
        "status",
        "phase",
        "started_at",
        "finished_at",
        "error_count",
        "attempts",
    ]
    list_filter = ["status", "phase", "origin", "partner"]
    date_hierarchy = "started_at"
    exclude = ["upload_files"]
    readonly_fields = [f.name for f in ImportRun._meta.fields if f.name != "upload_files"] + ["stored_upload"]

    @admin.display(description="Stored upload")
    def stored_upload(self, run: ImportRun) -> str:
        if not run.upload_files:
            return "—"
        names = ", ".join(f"{stored['name']} ({filesizeformat(stored['size'])})" for stored in run.upload_files)
        return f"{names}; removed {run.upload_removed_at:%Y-%m-%d %H:%M}" if run.upload_removed_at else names
