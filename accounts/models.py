"""Partners (the tenants) and their staff, the project's user model."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.roles import Action, Role, can


class Partner(models.Model):
    """A tenant of the product: every row of customer data belongs to exactly one partner."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def normalise_email(email: str) -> str:
    """The stored form of a sign-in address: stripped and lower-cased, so its case never matters."""
    return email.strip().lower()


class StaffUserManager(BaseUserManager["StaffUser"]):
    # Deliberately unscoped: authentication looks users up before any partner is known.
    # Views list staff through accounts.selectors, which always take the partner.
    def create_user(self, email: str, password: str | None = None, **fields: Any) -> StaffUser:
        user = self.model(email=normalise_email(email), **fields)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> StaffUser:
        """A platform operator: no partner, works in Django's admin only."""
        fields.update(is_staff=True, is_superuser=True, partner=None, role="")
        return self.create_user(email, password, **fields)

    def get_by_natural_key(self, username: str | None) -> StaffUser:
        """Sign-in ignores the address's case (SPEC §5: users log in with their email)."""
        return self.get(email__iexact=normalise_email(username or ""))


class StaffUser(AbstractBaseUser, PermissionsMixin):
    """A person working for one partner, with one role (SPEC §4); logs in by email.

    Platform operators have no partner and no role: they use Django's admin, as superusers or as
    read-only support accounts (staff in the "Support (read-only)" group, `create_support_user`).
    """

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, null=True, blank=True, related_name="staff")
    role = models.CharField(max_length=20, choices=Role.choices, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can use Django's admin (operators).")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = StaffUserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            # Partner staff always have a role; operators (Django's admin only) have neither a
            # partner nor a role, and are staff (read-only support) or superusers.
            models.CheckConstraint(
                name="staff_partner_has_role",
                condition=(Q(partner__isnull=False) & Q(role__in=Role.values))
                | (Q(partner__isnull=True) & Q(role="") & (Q(is_staff=True) | Q(is_superuser=True))),
                violation_error_message="A partner's staff have a role; operators have no partner and no role.",
            ),
            # The admin's flags are for operators only: a partner's user never sees other partners.
            models.CheckConstraint(
                name="partner_staff_not_operators",
                condition=Q(partner__isnull=True) | (Q(is_staff=False) & Q(is_superuser=False)),
                violation_error_message="A partner's staff cannot be staff or superusers of the admin.",
            ),
            # Addresses are stored lower-case; this keeps two spellings of one from ever coexisting.
            models.UniqueConstraint(Lower("email"), name="staff_email_unique_ignoring_case"),
        ]

    def __str__(self) -> str:
        return self.email

    @classmethod
    def normalize_username(cls, username: str) -> str:
        return normalise_email(super().normalize_username(username))

    @property
    def awaits_first_sign_in(self) -> bool:
        """Never signed in: an account from the old invitation flow or `create_staff`, to whom
        an invitation (a link to choose a password) can be sent again."""
        return self.is_active and self.last_login is None

    @property
    def display_name(self) -> str:
        return self.full_name or self.email

    def has_perm(self, perm: str, obj: models.Model | None = None) -> bool:
        """The product's actions (accounts.roles.Action) are answered by the role matrix of SPEC §4
        (never by the superuser flag); Django's own permissions, the admin's, as usual."""
        if perm in set(Action):
            return can(self, Action(perm))
        return super().has_perm(perm, obj)


class ApiToken(models.Model):
    """A staff user's personal API token. Only the sha256 of the secret is stored; the secret is
    shown once, at creation. The token acts with its user's current partner, role and status.

    Deliberately unscoped like the user model: authentication finds the token before any partner
    is known. Pages reach tokens through accounts.selectors, which require the user.
    """

    user = models.ForeignKey(StaffUser, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Invitation(models.Model):
    """An invitation to join a partner's staff, pending until the person accepts it through the
    emailed link by choosing a password, which creates their account.

    Deliberately unscoped like the user model: the link finds its invitation before any partner
    is known. Pages reach invitations through accounts.selectors, which require the partner.
    """

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    full_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices)
    invited_by = models.ForeignKey(StaffUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the latest email left.")
    # A resend increments it: the links of earlier emails stop working.
    link_version = models.PositiveIntegerField(default=1)
    accepted_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(StaffUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                "partner",
                Lower("email"),
                condition=Q(accepted_at__isnull=True, cancelled_at__isnull=True),
                name="one_pending_invitation_per_address",
            ),
            models.CheckConstraint(name="invitation_role_is_a_role", condition=Q(role__in=Role.values)),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.partner})"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.cancelled_at is None
