"""Typed requests: what a view knows of its request once the tenancy middleware and the role
check have run. Only types, for annotations: the objects are Django's and DRF's own requests."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import Partner, StaffUser
from core.api import TenantRequest


class ScopedRequest(HttpRequest):
    """Any request past `PartnerScopeMiddleware`: `partner` is the signed-in user's, or None
    (anonymous, or a platform operator)."""

    partner: Partner | None


class PartnerRequest(ScopedRequest):
    """The request of a view under `accounts.roles.require_action`: a signed-in staff user of a
    partner, whose role allows the view's action."""

    user: StaffUser
    partner: Partner


class PartnerAPIRequest(TenantRequest[Partner]):
    """The request of an API view (`core.api.PartnerViewSet`) past its role check: a signed-in
    staff user of a partner, by session or token."""

    user: StaffUser
