"""Metric snapshots of SPEC §2, one row per key and date, and the ledger of recompute runs.

Counts are stored as integers; percentages are derived by `metrics.numbers.pct` wherever they are
shown, so pages, API and CSV agree by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Self, overload

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Partner
from customers.models import Customer, Family, Product, Workload
from metrics.numbers import pct


class Percentage:
    """A percentage of two stored counts (SPEC §2), rounded by `pct`: read on a snapshot
    (`row.usage_pct`) or, by the exports, from a row of values by column name (`.of(values)`)."""

    def __init__(self, numerator: str, denominator: str) -> None:
        self.numerator, self.denominator = numerator, denominator

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Percentage: ...
    @overload
    def __get__(self, instance: object, owner: type) -> str: ...
    def __get__(self, instance: object | None, owner: type) -> Percentage | str:
        if instance is None:
            return self
        return pct(getattr(instance, self.numerator), getattr(instance, self.denominator))

    def of(self, values: Mapping[str, Any]) -> str:
        return pct(values[self.numerator], values[self.denominator])


def percentages(model: type[models.Model]) -> dict[str, Percentage]:
    """The percentages a snapshot model defines, by name."""
    found: dict[str, Percentage] = {}
    for klass in reversed(model.__mro__):
        found |= {name: value for name, value in vars(klass).items() if isinstance(value, Percentage)}
    return found


class Counts(models.Model):
    """The numbers every grain shares."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    as_of = models.DateField()
    entitled_users = models.PositiveIntegerField(default=0)
    active_users = models.PositiveIntegerField(default=0)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} of {self.as_of}"

    usage_pct = Percentage("active_users", "entitled_users")


class Licenses(Counts):
    sold_licenses = models.PositiveIntegerField(default=0)
    own_sold_licenses = models.PositiveIntegerField(default=0)
    assigned_licenses = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    deployment_pct = Percentage("assigned_licenses", "sold_licenses")

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
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="family_snapshots")
    family = models.CharField(max_length=20, choices=Family.choices)
    # The same numbers without the partner's excluded SKUs: what recommendations read (SPEC §8,
    # "excluded from recommendations and alerts without hiding them from the numbers").
    rec_sold_licenses = models.PositiveIntegerField(default=0)
    rec_assigned_licenses = models.PositiveIntegerField(default=0)
    rec_entitled_users = models.PositiveIntegerField(default=0)
    rec_active_users = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "family", "as_of"], name="family_snapshot_key")]
        indexes = [models.Index(fields=["partner", "as_of"], name="family_snapshot_partner_date")]


class PortfolioSnapshot(Licenses):
    family = models.CharField(max_length=20, choices=Family.choices)
    customers = models.PositiveIntegerField(default=0, help_text="Customers with a family row that date.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "family", "as_of"], name="portfolio_snapshot_key")]


class InactivityDays(models.IntegerChoices):
    DAYS_30 = 30, "30 days"
    DAYS_60 = 60, "60 days"
    DAYS_90 = 90, "90 days"
    DAYS_180 = 180, "180 days"


class InactiveSnapshot(models.Model):
    """Inactive licensed users (SPEC §8) at one date, for every period a partner may choose:
    `users_<days>` counts the users entitled at `as_of` (on SKUs not excluded from alerts) with no
    activity on a workload of those SKUs in as_of-days+1 … as_of. The row without a product counts
    each user of the customer once; a row per SKU counts the users holding it, which prices turn
    into money at read time (prices change without a recompute). Pages read these rows instead of
    scanning every user's activity (bench: the scan was most of the analytics page's time)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    as_of = models.DateField()
    users_30 = models.PositiveIntegerField(default=0)
    users_60 = models.PositiveIntegerField(default=0)
    users_90 = models.PositiveIntegerField(default=0)
    users_180 = models.PositiveIntegerField(default=0)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "product", "as_of"],
                condition=models.Q(product__isnull=False),
                name="inactive_snapshot_sku_key",
            ),
            models.UniqueConstraint(
                fields=["customer", "as_of"], condition=models.Q(product__isnull=True), name="inactive_snapshot_key"
            ),
        ]
        indexes = [models.Index(fields=["partner", "as_of"], name="inactive_snapshot_partner_date")]

    def __str__(self) -> str:
        return f"Inactive users of {self.customer_id} on {self.as_of}"

    @staticmethod
    def column(days: int) -> str:
        """The column counting users idle for `days` (one of InactivityDays)."""
        return f"users_{InactivityDays(days).value}"


class RunStatus(models.TextChoices):
    """The outcome of a recompute or an import run."""

    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Trigger(models.TextChoices):
    """What started a recompute."""

    NIGHTLY = "nightly", "Nightly run"
    IMPORT = "import", "After an import"
    COMMAND = "command", "recompute_metrics command"
    MANUAL = "manual", "Recompute now button"
    SETTINGS = "settings", "Changed exclusions"
    DEMO = "demo", "Demo data"
    BENCHMARK = "bench", "Benchmark"
    COLLECTION = "collection", "After a pull from the vendor's APIs"


class RecomputeRun(models.Model):
    """The ledger: one row per partner and business date. The row is claimed before the work
    and published in the same transaction as the snapshots, so a date is done exactly once
    however many workers, beats or redeliveries ask for it."""

    Status = RunStatus

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    as_of = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When this date's snapshots were last published; kept while a later rerun is running.
    published_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "as_of"], name="recompute_run_per_date"),
            models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="recompute_run_status_valid"),
            models.CheckConstraint(condition=models.Q(trigger__in=Trigger.values), name="recompute_run_trigger_valid"),
        ]
        indexes = [models.Index(fields=["partner", "-started_at"], name="recompute_run_recent")]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.as_of} {self.status}"


def _percent(default: int) -> models.DecimalField[Decimal | int, Decimal]:
    return models.DecimalField(
        max_digits=5, decimal_places=1, default=default, validators=[MinValueValidator(0), MaxValueValidator(1000)]
    )


class InsightSettings(models.Model):
    """A partner's choices for its insights: the recommendation thresholds of SPEC §3 (defaults
    as there), the inactivity period of SPEC §8 and the currency of unit prices. A partner that
    never saved any uses an unsaved instance with the defaults (`metrics.selectors.insight_settings`)."""

    partner = models.OneToOneField(Partner, on_delete=models.CASCADE, related_name="+")
    low_usage_pct = _percent(60)
    unused_licenses_min = models.PositiveIntegerField(default=5)
    unused_licenses_pct = _percent(25)
    howto_per_100_users = models.DecimalField(
        max_digits=6, decimal_places=1, default=5, validators=[MinValueValidator(0)]
    )
    howto_requests_min = models.PositiveIntegerField(default=3)
    growth_deployment_pct = _percent(90)
    growth_usage_pct = _percent(80)
    inactivity_days = models.PositiveSmallIntegerField(choices=InactivityDays.choices, default=InactivityDays.DAYS_30)
    currency = models.CharField(max_length=3, default="EUR", help_text="ISO 4217 code of the unit prices.")
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        verbose_name_plural = "insight settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(inactivity_days__in=InactivityDays.values), name="insight_settings_days_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Insight settings of {self.partner_id}"


class SkuSetting(models.Model):
    """A partner's settings of one SKU: its monthly unit price (turns unused seats and inactive
    users into money) and whether recommendations and alerts leave it out (free or donated
    licenses). Keyed by the sku text, so it applies to the catalog entry and imported ones alike."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    sku = models.CharField(max_length=100)
    monthly_price = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    excluded = models.BooleanField(default=False)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "sku"], name="sku_setting_per_partner"),
            models.CheckConstraint(
                condition=models.Q(monthly_price__isnull=True) | models.Q(monthly_price__gte=0),
                name="sku_setting_price_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.sku
