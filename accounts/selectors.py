"""Reads of staff. The user model's manager is unscoped (authentication needs it), so every
staff read goes through these selectors, which require the partner."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import ApiToken, Partner, StaffUser


def staff_list(*, partner: Partner) -> QuerySet[StaffUser]:
    return StaffUser.objects.filter(partner=partner).order_by("email")


def staff_get(*, partner: Partner, staff_id: int) -> StaffUser:
    return get_object_or_404(staff_list(partner=partner), pk=staff_id)


def api_token_list(*, user: StaffUser) -> QuerySet[ApiToken]:
    """A user's own tokens, live and revoked, newest first."""
    return ApiToken.objects.filter(user=user)


def api_token_get(*, user: StaffUser, token_id: int) -> ApiToken:
    """One of the user's own tokens; anybody else's id is a 404."""
    return get_object_or_404(api_token_list(user=user), pk=token_id)


def staff_email_taken(*, email: str) -> bool:
    """Whether any partner's staff (or an operator) has `email`: emails are unique across the
    product, as they sign in."""
    return StaffUser.objects.filter(email=email).exists()


def staff_by_email(*, email: str) -> StaffUser | None:
    return StaffUser.objects.filter(email=email).first()
