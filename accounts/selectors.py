"""Reads of staff. The user model's manager is unscoped (authentication needs it), so every
staff read goes through these selectors, which require the partner."""

from __future__ import annotations

import datetime as dt

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import ApiToken, Invitation, Partner, StaffUser, normalise_email


def staff_list(*, partner: Partner) -> QuerySet[StaffUser]:
    return StaffUser.objects.filter(partner=partner).order_by("email")


def staff_get(*, partner: Partner, staff_id: int) -> StaffUser:
    return get_object_or_404(staff_list(partner=partner), pk=staff_id)


def staff_member_by_email(*, partner: Partner, email: str) -> StaffUser | None:
    """The member of `partner` with `email` (any case); another partner's is never found."""
    return staff_list(partner=partner).filter(email__iexact=normalise_email(email)).first()


def staff_locks(*, partner: Partner) -> dict[int, dt.datetime]:
    """The members of `partner` locked out of sign-in, with when their lock ends: django-axes
    counts failures per address and client address within the cool-off."""
    cool_off = get_cool_off()
    members = dict(staff_list(partner=partner).values_list("email", "pk"))
    attempts = AccessAttempt.objects.filter(username__in=members, attempt_time__gte=timezone.now() - cool_off)
    failures: dict[tuple[str, str], tuple[int, dt.datetime]] = {}
    for username, address, count, at in attempts.values_list(
        "username", "ip_address", "failures_since_start", "attempt_time"
    ):
        total, latest = failures.get((username, address), (0, at))
        failures[username, address] = (total + count, max(latest, at))
    locks: dict[int, dt.datetime] = {}
    for (username, _), (total, latest) in failures.items():
        if total >= settings.AXES_FAILURE_LIMIT:
            pk, ends = members[username], latest + cool_off
            locks[pk] = max(locks.get(pk, ends), ends)
    return locks


def invitation_list(*, partner: Partner) -> QuerySet[Invitation]:
    """The pending invitations of `partner`, newest first."""
    pending = Invitation.objects.filter(partner=partner, accepted_at=None, cancelled_at=None)
    return pending.select_related("invited_by")


def invitation_get(*, partner: Partner, invitation_id: int) -> Invitation:
    """One pending invitation of `partner`; anybody else's (or a closed one) is a 404."""
    return get_object_or_404(invitation_list(partner=partner), pk=invitation_id)


def invitation_pending(*, partner: Partner, email: str) -> bool:
    return invitation_list(partner=partner).filter(email__iexact=normalise_email(email)).exists()


def api_token_list(*, user: StaffUser) -> QuerySet[ApiToken]:
    """A user's own tokens, live and revoked, newest first."""
    return ApiToken.objects.filter(user=user)


def api_token_get(*, user: StaffUser, token_id: int) -> ApiToken:
    """One of the user's own tokens; anybody else's id is a 404."""
    return get_object_or_404(api_token_list(user=user), pk=token_id)


def staff_email_taken(*, email: str) -> bool:
    """Whether any partner's staff (or an operator) has `email`: emails are unique across the
    product, as they sign in. For operators' commands only: a page must never answer this."""
    return StaffUser.objects.filter(email__iexact=normalise_email(email)).exists()


def staff_by_email(*, email: str) -> StaffUser | None:
    return StaffUser.objects.filter(email=email).first()
