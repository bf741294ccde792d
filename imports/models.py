"""The import run: one import (command, upload or API) of a partner's data (SPEC §6).

The table keeps its name from when the model lived in `customers` (migration imports/0001 moved
the model, not the data).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from customers.models import TenantModel
from metrics.models import RunStatus


class ImportOrigin(models.TextChoices):
    """Where an import came from."""

    COMMAND = "command", "Command line"
    UPLOAD = "upload", "Web upload"
    API = "api", "API"


class ImportRun(TenantModel):
    """One import (command, upload or API): who, when, what it read, what it changed, outcome."""

    Status = RunStatus
    Origin = ImportOrigin

    started_by = models.ForeignKey(
        "accounts.StaffUser", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    origin = models.CharField(max_length=10, choices=ImportOrigin.choices)
    source_name = models.CharField(max_length=500, help_text="Folder, archive or uploaded file names.")
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"customers.csv": {"rows": 3, "created": 1, "updated": 1, "unchanged": 1}, ...}
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    # First and last activity/assignment dates the import touched: what the recompute must redo.
    affected_from = models.DateField(null=True, blank=True)
    affected_to = models.DateField(null=True, blank=True)

    class Meta:
        db_table = "customers_importrun"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["partner", "-started_at"], name="importrun_partner_started")]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="import_run_status_valid"),
            models.CheckConstraint(condition=models.Q(origin__in=ImportOrigin.values), name="import_run_origin_valid"),
        ]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.status})"

    @property
    def totals(self) -> dict[str, int]:
        """Created, updated and unchanged rows over every file of the import."""
        keys = ("created", "updated", "unchanged")
        return {key: sum(counts.get(key, 0) for counts in self.counts.values()) for key in keys}
