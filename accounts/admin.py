"""Django's admin is the platform operator's tool: partners, their staff, API tokens, operators.

A partner's staff are read there, not changed: they are managed on their partner's staff page
(invitations, roles, deactivation), and the database refuses them the admin's flags
(`partner_staff_not_operators`). Operators (no partner) are superusers or read-only support
accounts (`create_support_user`). A partner is deleted by `offboard_partner`, never here.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import ApiToken, Partner, StaffUser
from accounts.operators.services import support_group_sync
from accounts.services import api_token_revoke, staff_update


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin[Partner]):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]

    def has_delete_permission(self, request: HttpRequest, obj: Partner | None = None) -> bool:
        return False  # the cascade would gather millions of rows in Python: `offboard_partner SLUG`


OPERATOR_FIELDSETS = [
    (None, {"fields": ["email", "password", "full_name"]}),
    ("Access", {"fields": ["is_active", "is_staff", "is_superuser", "groups"]}),
    ("Dates", {"fields": ["last_login", "date_joined"]}),
]
PARTNER_STAFF_FIELDSETS = [
    (None, {"fields": ["email", "full_name"]}),
    ("Tenant", {"fields": ["partner", "role", "is_active"]}),
    ("Dates", {"fields": ["last_login", "date_joined"]}),
]


class OperatorCreationForm(AdminUserCreationForm):
    """The admin adds operators only: no partner, no role, staff (read-only support) or superuser."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not (cleaned.get("is_staff") or cleaned.get("is_superuser")):
            raise ValidationError("An operator is staff (read-only support, with the support group) or a superuser.")
        return cleaned


@admin.register(StaffUser)
class StaffUserAdmin(UserAdmin[StaffUser]):  # type: ignore[type-var]  # django-stubs bounds UserAdmin to AbstractUser
    ordering = ["email"]
    list_display = ["email", "full_name", "partner", "role", "is_active", "is_staff", "is_superuser"]
    list_filter = ["partner", "role", "is_active", "is_staff", "is_superuser"]
    list_select_related = ["partner"]
    search_fields = ["email", "full_name"]
    filter_horizontal = ["groups"]
    actions = ["deactivate"]
    add_form = OperatorCreationForm
    # Adding here makes operators only; partner staff come from invitations or `create_staff`.
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "is_staff", "is_superuser", "password1", "password2"]})
    ]

    def save_model(self, request: HttpRequest, obj: StaffUser, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change and not obj.is_superuser:  # a new support account: read-only from the start
            obj.groups.add(support_group_sync())

    def get_fieldsets(self, request: HttpRequest, obj: StaffUser | None = None) -> Any:
        if obj is None:
            return super().get_fieldsets(request, obj)
        return PARTNER_STAFF_FIELDSETS if obj.partner_id else OPERATOR_FIELDSETS

    def has_change_permission(self, request: HttpRequest, obj: StaffUser | None = None) -> bool:
        if obj is not None and obj.partner_id is not None:
            return False  # read-only: their partner's staff page changes them
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: StaffUser | None = None) -> bool:
        if obj is not None and obj.partner_id is not None:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Deactivate the selected partner staff", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[StaffUser]) -> None:
        """Through the staff service, as the partner's staff page does (with what it ends)."""
        members = list(queryset.filter(partner__isnull=False, is_active=True))
        for member in members:
            staff_update(member=member, role=member.role, is_active=False)
        self.message_user(request, f"Deactivated {len(members)} partner staff.", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    """Tokens are listed, searched and revoked; their secrets are stored nowhere and their
    hashes never shown."""

    list_display = ["prefix", "name", "user", "partner", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "user__partner"]
    list_select_related = ["user__partner"]
    search_fields = ["prefix", "name", "user__email"]
    fields = readonly_fields = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="partner", ordering="user__partner__slug")
    def partner(self, token: ApiToken) -> Partner | None:
        return token.user.partner

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a token is made by its user, who alone sees the secret once

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoked, never deleted: the list keeps who had which token

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        live = list(queryset.filter(revoked_at__isnull=True))
        for token in live:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {len(live)} tokens.", messages.SUCCESS)
