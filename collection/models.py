"""A partner's connection to the vendor's APIs, the pulls that use it, and each customer's state.

The client secret is stored encrypted (`collection.secrets`, keys from CONNECTION_KEYS): only the
pull and the test of the connection decrypt it, and nothing shows it back.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Self

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Partner
from collection.vendor import ErrorKind
from customers.models import Customer


class VendorConnection(models.Model):
    """One partner's app registration in its own directory (SPEC §9): set by its Global admin."""

    partner = models.OneToOneField(Partner, on_delete=models.CASCADE, related_name="+")
    tenant_id = models.CharField("partner's directory tenant id", max_length=100)
    client_id = models.CharField("application (client) id", max_length=100)
    encrypted_secret = models.TextField(help_text="The client secret, encrypted with CONNECTION_KEYS.")
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    tested_at = models.DateTimeField(null=True, blank=True)
    # [{"check": "token", "ok": true, "message": "…"}, …]: what the last test found, in plain words.
    test_result = models.JSONField(default=list, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    def __str__(self) -> str:
        return f"Vendor connection of {self.partner_id}"


class PullTrigger(models.TextChoices):
    NIGHTLY = "nightly", "Nightly pull"
    MANUAL = "manual", "Pull now button"
    COMMAND = "command", "pull_vendor_data command"


class PullStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Some customers failed"
    FAILED = "failed", "Failed"


class PullRun(models.Model):
    """One pull of a partner's data: when, what it did, and how it ended. A nightly pull is one
    row per partner and night (unique), so a second beat or a redelivered task never pulls twice;
    and a partner has at most one running pull."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    trigger = models.CharField(max_length=10, choices=PullTrigger.choices)
    night = models.DateField(null=True, blank=True, help_text="The night of a nightly pull (its yesterday).")
    customer_tenant_id = models.CharField(max_length=100, blank=True, help_text="A pull of one customer only.")
    status = models.CharField(max_length=10, choices=PullStatus.choices, default=PullStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker took it (once).")
    finished_at = models.DateTimeField(null=True, blank=True)
    customers_total = models.PositiveIntegerField(default=0)
    customers_done = models.PositiveIntegerField(default=0)
    customers_failed = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    throttled = models.PositiveIntegerField(default=0)
    error_kind = models.CharField(max_length=30, choices=ErrorKind.choices, blank=True)
    error = models.TextField(blank=True, help_text="Why nothing could be pulled, in plain words.")

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "night"], condition=Q(trigger="nightly"), name="pull_run_per_night"
            ),
            # One pull of a partner at a time: a second would fetch and import the same answers again.
            models.UniqueConstraint(fields=["partner"], condition=Q(status="running"), name="pull_run_one_running"),
            models.CheckConstraint(condition=Q(trigger__in=PullTrigger.values), name="pull_run_trigger_valid"),
            models.CheckConstraint(condition=Q(status__in=PullStatus.values), name="pull_run_status_valid"),
        ]
        indexes = [models.Index(fields=["partner", "-started_at"], name="pull_run_recent")]

    def __str__(self) -> str:
        return f"Pull {self.pk} of {self.partner_id} ({self.status})"


class CustomerSync(models.Model):
    """Where one customer's collection stands: the last success, the last error in plain words,
    what was imported, and the last day of activity pulled."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    tenant_id = models.CharField(max_length=100)
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    name = models.CharField(max_length=300, blank=True, help_text="As the partner portal names the customer.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_report_day = models.DateField(null=True, blank=True, help_text="The last day of activity pulled.")
    error_kind = models.CharField(max_length=30, choices=ErrorKind.choices, blank=True)
    error = models.TextField(blank=True, help_text="The last error, in plain words; empty after a success.")
    failures = models.PositiveIntegerField(default=0, help_text="Pulls failed in a row.")
    # {"subscriptions": 3, "skus": 4, "report_days": ["2026-12-05", "2026-12-06"], "users": 25, "import_run": 17}
    imported = models.JSONField(default=dict, blank=True)
    concealed_names = models.BooleanField(default=False)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        ordering = ["name", "tenant_id"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "tenant_id"], name="customer_sync_per_tenant"),
            models.CheckConstraint(
                condition=Q(error_kind="") | Q(error_kind__in=ErrorKind.values), name="customer_sync_error_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} of {self.partner_id}"

    @property
    def data_age_days(self) -> int | None:
        """Days from the last day of activity pulled to today (UTC, as the report API counts)."""
        if self.last_report_day is None:
            return None
        return (timezone.now().astimezone(dt.UTC).date() - self.last_report_day).days
