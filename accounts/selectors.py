"""Reads of staff. The user model's manager is unscoped (authentication needs it), so every
staff read goes through these selectors, which require the partner."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import Partner, StaffUser


def staff_list(*, partner: Partner) -> QuerySet[StaffUser]:
    return StaffUser.objects.filter(partner=partner).order_by("email")


def staff_get(*, partner: Partner, staff_id: int) -> StaffUser:
    return get_object_or_404(staff_list(partner=partner), pk=staff_id)
