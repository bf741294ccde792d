"""The import run: one import (command, upload or API) of a partner's data (SPEC §6).

The table keeps its name from when the model lived in `customers` (migration imports/0001 moved
the model, not the data).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from customers.models import TenantModel


class ImportStatus(models.TextChoices):
    """Where an import run stands: uploads wait in the queue for a worker, then run."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ImportPhase(models.TextChoices):
    """What a run is doing (a failed run keeps the phase it stopped in)."""

    QUEUED = "queued", "Waiting for a worker"
    WAITING = "waiting", "Waiting for another import of this partner to end"
    READING = "reading", "Reading the files"
    CHECKING = "checking", "Checking the rows"
    WRITING = "writing", "Writing"
    RECOMPUTE = "recompute", "Queueing the recompute of the metrics"
    DONE = "done", "Done"


class ImportOrigin(models.TextChoices):
    """Where an import came from."""

    COMMAND = "command", "Command line"
    UPLOAD = "upload", "Web upload"
    API = "api", "API"
    COLLECTION = "collection", "Collected from the vendor's APIs"


class ImportRun(TenantModel):
    """One import (command, upload or API): who, when, what it read, what it changed, outcome."""

    Status = ImportStatus
    Phase = ImportPhase
    Origin = ImportOrigin

    started_by = models.ForeignKey(
        "accounts.StaffUser", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    origin = models.CharField(max_length=10, choices=ImportOrigin.choices)
    source_name = models.CharField(max_length=500, help_text="Folder, archive or uploaded file names.")
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.QUEUED)
    started_at = models.DateTimeField(default=timezone.now)  # when it was uploaded or started
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"customers.csv": {"rows": 3, "created": 1, "updated": 1, "unchanged": 1}, ...}
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    # First and last activity/assignment dates the import touched: what the recompute must redo.
    affected_from = models.DateField(null=True, blank=True)
    affected_to = models.DateField(null=True, blank=True)
    # Progress, as of the run's last committed state; while it runs, the live figures and the
    # heartbeat are in the shared cache (imports/progress.py), as its transaction is still open.
    rows_read = models.PositiveBigIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    files_total = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times the run was started.")
    # Why it failed when the import itself could not say: not queued, its worker stopped, too long.
    failure_reason = models.TextField(blank=True)
    # The stored upload (web and API), in Django's default storage: [{"name", "path", "size"}, ...].
    upload_files = models.JSONField(default=list, blank=True)
    upload_removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "customers_importrun"
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["partner", "-started_at"], name="importrun_partner_started"),
            # The sweeper's look for runs that have not ended, across partners.
            models.Index(
                fields=["status"], condition=models.Q(status__in=["queued", "running"]), name="importrun_unfinished"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=ImportStatus.values), name="import_run_status_valid"),
            models.CheckConstraint(condition=models.Q(phase__in=ImportPhase.values), name="import_run_phase_valid"),
            models.CheckConstraint(condition=models.Q(origin__in=ImportOrigin.values), name="import_run_origin_valid"),
        ]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.status})"

    @property
    def has_upload(self) -> bool:
        """Whether the run's upload is stored, so that it can be started again."""
        return bool(self.upload_files) and self.upload_removed_at is None

    @property
    def upload_bytes(self) -> int:
        return sum(int(stored.get("size", 0)) for stored in self.upload_files)

    @property
    def finished(self) -> bool:
        return self.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED)

    @property
    def totals(self) -> dict[str, int]:
        """Created, updated and unchanged rows over every file of the import."""
        keys = ("created", "updated", "unchanged")
        return {key: sum(counts.get(key, 0) for counts in self.counts.values()) for key in keys}
