"""Scheduled reports (SPEC §8): a partner's schedule, and the ledger of the reports it was sent."""

from __future__ import annotations

from typing import ClassVar, Self

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Partner


class Cadence(models.TextChoices):
    OFF = "off", "Off"
    WEEKLY = "weekly", "Weekly, on Mondays"
    MONTHLY = "monthly", "Monthly, on the 1st"


class ReportGrain(models.TextChoices):
    """The grains of the attached portfolio CSV (SPEC §7)."""

    SKU = "sku", "SKU"
    WORKLOAD = "workload", "Workload"
    FAMILY = "family", "Product family"


class ReportSchedule(models.Model):
    """Whether, how often and to whom the partner's portfolio report is emailed. A partner that
    never saved one uses an unsaved instance (cadence off: `exports.selectors.report_schedule_get`)."""

    partner = models.OneToOneField(Partner, on_delete=models.CASCADE, related_name="report_schedule")
    cadence = models.CharField(max_length=10, choices=Cadence.choices, default=Cadence.OFF)
    grain = models.CharField(max_length=10, choices=ReportGrain.choices, default=ReportGrain.FAMILY)
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cadence__in=Cadence.values), name="report_schedule_cadence_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(grain__in=ReportGrain.values), name="report_schedule_grain_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Report schedule of {self.partner_id}: {self.cadence}"


class ReportDelivery(models.Model):
    """The ledger: one row per partner and period (`2026-W49`, `2026-12`), inserted in the same
    transaction as the sending, so a period is mailed once however many beats or redeliveries
    ask for it."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=10)
    as_of = models.DateField(help_text="The snapshot date the report shows.")
    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.PositiveIntegerField(default=0)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "period"], name="report_delivery_per_period")]
        ordering = ["-sent_at", "-id"]
        verbose_name_plural = "report deliveries"

    def __str__(self) -> str:
        return f"{self.partner_id} {self.period}"
