"""The domain of SPEC §1: customers, products, subscriptions, end users, assignments, activity.

Every tenant-owned table carries `partner_id`, also the big fact tables, so scoping is one
indexed filter and set-based SQL can restrict to one partner. Composite foreign keys added in
migration 0002 make the database itself refuse rows whose customer or partner disagree
(for example an assignment of one customer's user on another customer's subscription).
"""

from __future__ import annotations

from typing import ClassVar, Protocol, Self

from django.db import models
from django.db.models import Q
from django_scopes import ScopedManager

from accounts.models import Partner


class Family(models.TextChoices):
    OFFICE365 = "office365", "Office 365"
    DYNAMICS365 = "dynamics365", "Dynamics 365"
    OTHER = "other", "Other"


# Only these families appear in insights and exports (SPEC §1); others are kept and ignored.
INSIGHT_FAMILIES = (Family.OFFICE365, Family.DYNAMICS365)


class HasFamily(Protocol):
    @property
    def family(self) -> str: ...


def family_order(row: HasFamily) -> int:
    """Sort key: families in the order people expect them (Office 365 first), not A to Z."""
    return INSIGHT_FAMILIES.index(row.family)


class Workload(models.TextChoices):
    EXCHANGE = "exchange", "Exchange"
    SHAREPOINT = "sharepoint", "SharePoint"
    ONEDRIVE = "onedrive", "OneDrive"
    TEAMS = "teams", "Teams"
    YAMMER = "yammer", "Yammer"  # license-free: anyone in the organisation may use it
    OFFICE_APPS = "office_apps", "Office apps"
    DYNAMICS365 = "dynamics365", "Dynamics 365"


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    GRACE = "grace", "Grace"
    DISABLED = "disabled", "Disabled"
    PREPROVISIONED = "preprovisioned", "Pre-provisioned"
    SUSPENDED = "suspended", "Suspended"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class Source(models.TextChoices):
    OWN = "own", "Sold by this partner"
    OTHER_PARTNER = "other_partner", "Another partner"
    DIRECT = "direct", "Bought directly"


class BillingCycle(models.TextChoices):
    """The partner portal's billing cycles (vendor-formats.md §3); empty when not known."""

    MONTHLY = "monthly", "Monthly"
    ANNUAL = "annual", "Annual"
    TRIENNIAL = "triennial", "Triennial"
    NONE = "none", "None (trial)"
    ONETIME = "onetime", "One-time"


class AssignmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    UPGRADED = "upgraded", "Upgraded"
    CANCELLED = "cancelled", "Cancelled"


class SupportCategory(models.TextChoices):
    HOWTO = "howto", "How-to"
    INCIDENT = "incident", "Incident"
    BILLING = "billing", "Billing"
    OTHER = "other", "Other"


def _in_choices(field: str, choices: type[models.TextChoices]) -> Q:
    return Q(**{f"{field}__in": choices.values})


class TenantModel(models.Model):
    """A row owned by one partner; `objects` refuses to query outside a partner scope.

    django-scopes makes its manager class at run time, where the mypy plugin cannot find it: the
    models whose rows such models point to carry `type: ignore[django-manager-missing]` (their
    reverse managers, e.g. `customer.subscriptions`, are then typed as plain related managers).
    """

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")

    # A django.db.models.Manager, made at run time by django-scopes (which has no type hints).
    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        abstract = True


class Customer(TenantModel):  # type: ignore[django-manager-missing]  # reverse managers of django-scopes models
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=300)
    domain = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["name", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "external_id"], name="customer_external_id_uniq"),
            # Target of the composite foreign keys (customer_id, partner_id) of migration 0002.
            models.UniqueConstraint(fields=["id", "partner"], name="customer_id_partner_uniq"),
        ]

    def __str__(self) -> str:
        return self.name


class ProductQuerySet(models.QuerySet["Product"]):
    def visible_to(self, partner: Partner | int) -> ProductQuerySet:
        """The partner's own products plus the shipped catalog entries it has not replaced."""
        own_skus = Product.objects.filter(partner=partner).values("sku")
        return self.filter(Q(partner=partner) | (Q(partner__isnull=True) & ~Q(sku__in=own_skus)))


class Product(models.Model):
    """A SKU. Rows without a partner are the shipped catalog (SPEC §1); a partner's imported
    product of the same sku replaces the catalog entry for that partner only."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    sku = models.CharField(max_length=100)
    name = models.CharField(max_length=300)
    family = models.CharField(max_length=20, choices=Family.choices)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "sku"], condition=Q(partner__isnull=False), name="product_partner_sku_uniq"
            ),
            models.UniqueConstraint(fields=["sku"], condition=Q(partner__isnull=True), name="product_catalog_sku_uniq"),
            models.CheckConstraint(condition=_in_choices("family", Family), name="product_family_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @property
    def workload_list(self) -> list[str]:
        return sorted(w.workload for w in self.workloads.all())


class ProductWorkload(models.Model):
    """A workload a SKU includes: a table, so metric SQL can join on it."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="workloads")
    workload = models.CharField(max_length=20, choices=Workload.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "workload"], name="product_workload_uniq"),
            models.CheckConstraint(condition=_in_choices("workload", Workload), name="product_workload_valid"),
        ]

    def __str__(self) -> str:
        return self.workload


class Subscription(TenantModel):  # type: ignore[django-manager-missing]  # reverse managers of django-scopes models
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="subscriptions")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    external_id = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices)
    is_trial = models.BooleanField(default=False)
    source = models.CharField(max_length=20, choices=Source.choices)
    start_date = models.DateField(null=True, blank=True, help_text="Empty: start unknown, counted from any date.")
    end_date = models.DateField(null=True, blank=True)
    # Only the partner portal's subscriptions carry these (vendor-formats.md §3); canonical imports
    # leave them as they are. The database default lets set-based upserts leave them out.
    auto_renew = models.BooleanField(null=True, blank=True, help_text="Renews at its end date; empty: unknown.")
    billing_cycle = models.CharField(max_length=20, choices=BillingCycle.choices, blank=True, db_default="")

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "external_id"], name="subscription_external_id_uniq"),
            models.UniqueConstraint(fields=["id", "customer"], name="subscription_id_customer_uniq"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="subscription_quantity_non_negative"),
            models.CheckConstraint(
                condition=_in_choices("status", SubscriptionStatus), name="subscription_status_valid"
            ),
            models.CheckConstraint(condition=_in_choices("source", Source), name="subscription_source_valid"),
            models.CheckConstraint(
                condition=Q(billing_cycle="") | _in_choices("billing_cycle", BillingCycle),
                name="subscription_billing_cycle_valid",
            ),
        ]
        indexes = [models.Index(fields=["customer", "product"], name="subscription_customer_product")]

    def __str__(self) -> str:
        return self.external_id


class EndUser(TenantModel):  # type: ignore[django-manager-missing]  # reverse managers of django-scopes models
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="users")
    external_id = models.CharField(max_length=200)
    upn = models.CharField("user principal name", max_length=320)
    display_name = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["upn"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "external_id"], name="enduser_external_id_uniq"),
            models.UniqueConstraint(fields=["id", "customer"], name="enduser_id_customer_uniq"),
            models.UniqueConstraint(fields=["id", "partner"], name="enduser_id_partner_uniq"),
        ]

    def __str__(self) -> str:
        return self.upn


class LicenseAssignment(TenantModel):
    """A seat of a subscription given to an end user; matched by (user, subscription, assigned_on)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(EndUser, on_delete=models.CASCADE, related_name="assignments")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="assignments")
    assigned_on = models.DateField()
    removed_on = models.DateField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=AssignmentState.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "subscription", "assigned_on"], name="assignment_natural_key"),
            models.CheckConstraint(condition=_in_choices("state", AssignmentState), name="assignment_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.subscription_id} from {self.assigned_on}"


class Activity(models.Model):
    """An end user did something in one workload on one day: a fact, stored once.

    The primary key (user_id, activity_date, workload) is also the index the metric queries
    need: an index-only scan in user order makes the distinct-user reduction cheap
    (shared/PERFORMANCE.md).
    """

    pk = models.CompositePrimaryKey("user_id", "activity_date", "workload")
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+", db_index=False)
    # The (user_id, partner_id) composite foreign key of migration 0002 replaces a plain one.
    user = models.ForeignKey(EndUser, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    activity_date = models.DateField()
    workload = models.CharField(max_length=20, choices=Workload.choices)

    # A django.db.models.Manager, made at run time by django-scopes (which has no type hints).
    objects: ClassVar[models.Manager[Self]] = ScopedManager(partner="partner")

    class Meta:
        verbose_name_plural = "activities"
        indexes = [models.Index(fields=["partner", "activity_date"], name="activity_partner_date")]
        constraints = [
            models.CheckConstraint(condition=_in_choices("workload", Workload), name="activity_workload_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.workload} {self.activity_date}"


class SupportRequest(TenantModel):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="support_requests")
    external_id = models.CharField(max_length=200)
    opened_on = models.DateField()
    category = models.CharField(max_length=20, choices=SupportCategory.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "external_id"], name="support_external_id_uniq"),
            models.CheckConstraint(condition=_in_choices("category", SupportCategory), name="support_category_valid"),
        ]
        indexes = [models.Index(fields=["customer", "opened_on"], name="support_customer_opened")]

    def __str__(self) -> str:
        return self.external_id
