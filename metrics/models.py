"""Metric snapshots of SPEC §2, one row per key and date, and the ledger of recompute runs.

Counts are stored as integers; percentages are derived by `metrics.numbers.pct` wherever they are
shown, so pages, API and CSV agree by construction.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Partner
from customers.models import Customer, Family, Product, Workload
from metrics.numbers import pct


class Counts(models.Model):
    """The numbers every grain shares."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    as_of = models.DateField()
    entitled_users = models.PositiveIntegerField(default=0)
    active_users = models.PositiveIntegerField(default=0)

    objects = ScopedManager(partner="partner")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} of {self.as_of}"

    @property
    def usage_pct(self) -> str:
        return pct(self.active_users, self.entitled_users)


class Licenses(Counts):
    sold_licenses = models.PositiveIntegerField(default=0)
    own_sold_licenses = models.PositiveIntegerField(default=0)
    assigned_licenses = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    @property
    def deployment_pct(self) -> str:
        return pct(self.assigned_licenses, self.sold_licenses)

    @property
    def unused_licenses(self) -> int:
        return max(self.sold_licenses - self.assigned_licenses, 0)


class SkuSnapshot(Licenses):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "product", "as_of"], name="sku_snapshot_key")]
        indexes = [models.Index(fields=["partner", "as_of"], name="sku_snapshot_partner_date")]


class WorkloadSnapshot(Counts):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    workload = models.CharField(max_length=20, choices=Workload.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "workload", "as_of"], name="workload_snapshot_key")]
        indexes = [models.Index(fields=["partner", "as_of"], name="workload_snapshot_partner_date")]


class FamilySnapshot(Licenses):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    family = models.CharField(max_length=20, choices=Family.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "family", "as_of"], name="family_snapshot_key")]
        indexes = [models.Index(fields=["partner", "as_of"], name="family_snapshot_partner_date")]


class PortfolioSnapshot(Licenses):
    family = models.CharField(max_length=20, choices=Family.choices)
    customers = models.PositiveIntegerField(default=0, help_text="Customers with a family row that date.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "family", "as_of"], name="portfolio_snapshot_key")]


class RecomputeRun(models.Model):
    """The ledger: one row per partner and business date. The row is claimed before the work
    and published in the same transaction as the snapshots, so a date is done exactly once
    however many workers, beats or redeliveries ask for it."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    as_of = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=20, help_text="nightly, import, command or manual")
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When this date's snapshots were last published; kept while a later rerun is running.
    published_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    objects = ScopedManager(partner="partner")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "as_of"], name="recompute_run_per_date")]
        indexes = [models.Index(fields=["partner", "-started_at"], name="recompute_run_recent")]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.as_of} {self.status}"
