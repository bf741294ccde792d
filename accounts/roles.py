"""Who may do what: the role matrix of SPEC §4, in one table.

Views and the API ask `can()` (or use `require_action`); nothing else compares role strings.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import models

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

# A view's request type (accounts.http.PartnerRequest for the views below) and other arguments.
RequestT = TypeVar("RequestT", bound="HttpRequest")
ViewParams = ParamSpec("ViewParams")


class Member(Protocol):
    """What the role matrix reads of a staff user (accounts.models.StaffUser)."""

    pk: Any
    role: str
    partner_id: int | None

    @property
    def is_authenticated(self) -> bool: ...


class Invited(Protocol):
    """What the role matrix reads of an invitation (accounts.models.Invitation)."""

    role: str
    partner_id: int


class Role(models.TextChoices):
    GLOBAL_ADMIN = "global_admin", "Global admin"
    USER_ADMIN = "user_admin", "User management admin"
    ADMIN_AGENT = "admin_agent", "Admin agent"
    SALES_AGENT = "sales_agent", "Sales agent"


class Action(enum.StrEnum):
    VIEW_INSIGHTS = "view_insights"  # customers, insights, analytics, own subscriptions
    DOWNLOAD_EXPORTS = "download_exports"
    IMPORT_DATA = "import_data"
    TRIGGER_RECOMPUTE = "trigger_recompute"
    EDIT_SETTINGS = "edit_settings"  # recommendation thresholds, prices, excluded SKUs
    MANAGE_STAFF = "manage_staff"  # invite, resend, change role, deactivate, unlock
    MANAGE_CONNECTION = "manage_connection"  # the vendor connection: its credentials (SPEC §9)


_ALL = frozenset(Role)
_OPERATORS = frozenset({Role.GLOBAL_ADMIN, Role.ADMIN_AGENT})

# SPEC §4, row by row.
PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.VIEW_INSIGHTS: _ALL,
    Action.DOWNLOAD_EXPORTS: _ALL,
    Action.IMPORT_DATA: _OPERATORS,
    Action.TRIGGER_RECOMPUTE: _OPERATORS,
    Action.EDIT_SETTINGS: _OPERATORS,
    Action.MANAGE_STAFF: frozenset({Role.GLOBAL_ADMIN, Role.USER_ADMIN}),
    Action.MANAGE_CONNECTION: frozenset({Role.GLOBAL_ADMIN}),  # SPEC §9: only a Global admin sees it
}

# Roles a staff manager may hand out or take away; a User management admin may not touch
# Global admins (SPEC §4).
GRANTABLE_ROLES: dict[Role, frozenset[Role]] = {
    Role.GLOBAL_ADMIN: _ALL,
    Role.USER_ADMIN: _ALL - {Role.GLOBAL_ADMIN},
}


def can(user: Member | Any, action: Action) -> bool:
    """Whether a signed-in staff user of a partner may take `action`."""
    role = getattr(user, "role", "")
    if not getattr(user, "is_authenticated", False) or not getattr(user, "partner_id", None):
        return False
    return role in PERMISSIONS[action]


def can_grant(actor: Member, role: str) -> bool:
    """Whether `actor` may give someone `role` (SPEC §4: only Global admins grant Global admin)."""
    return can(actor, Action.MANAGE_STAFF) and role in GRANTABLE_ROLES[Role(actor.role)]


def can_manage_member(actor: Member, member: Member, new_role: str | None = None) -> bool:
    """Whether `actor` may change `member` (of the same partner), optionally to `new_role`."""
    if not can(actor, Action.MANAGE_STAFF) or actor.partner_id != member.partner_id:
        return False
    if actor.pk == member.pk:
        return False  # nobody changes their own role or deactivates themselves
    return can_grant(actor, member.role) and (new_role is None or can_grant(actor, new_role))


def can_manage_invitation(actor: Member, invitation: Invited) -> bool:
    """Whether `actor` may resend or cancel an invitation of their partner: only who may grant its role."""
    return actor.partner_id == invitation.partner_id and can_grant(actor, invitation.role)


def require_action(
    action: Action,
) -> Callable[
    [Callable[Concatenate[RequestT, ViewParams], HttpResponseBase]],
    Callable[Concatenate[RequestT, ViewParams], HttpResponseBase],
]:
    """View decorator: anonymous users go to the login page, forbidden roles get 403. The view
    itself only ever sees a partner member allowed to take `action`: it may declare its request
    an `accounts.http.PartnerRequest`."""

    def decorator(
        view: Callable[Concatenate[RequestT, ViewParams], HttpResponseBase],
    ) -> Callable[Concatenate[RequestT, ViewParams], HttpResponseBase]:
        @wraps(view)
        def wrapper(request: RequestT, /, *args: ViewParams.args, **kwargs: ViewParams.kwargs) -> HttpResponseBase:
            if not request.user.is_authenticated:
                from django.contrib.auth.views import redirect_to_login

                return redirect_to_login(request.get_full_path())
            if not can(request.user, action):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapper.required_action = action  # type: ignore[attr-defined]  # mypy has no attributes on functions
        return wrapper

    return decorator
