"""Reads of report schedules and deliveries. Every selector takes the partner as a required keyword."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Partner, StaffUser
from accounts.selectors import staff_list
from exports.models import ReportDelivery, ReportSchedule


def report_schedule_get(*, partner: Partner) -> ReportSchedule:
    """The partner's schedule; an unsaved one (cadence off) when it never saved any."""
    return ReportSchedule.objects.filter(partner=partner).first() or ReportSchedule(partner=partner)


def report_recipient_choices(*, partner: Partner) -> QuerySet[StaffUser]:
    """Who may receive the partner's reports: its active staff."""
    return staff_list(partner=partner).filter(is_active=True)


def report_delivery_list(*, partner: Partner) -> QuerySet[ReportDelivery]:
    return ReportDelivery.objects.filter(partner=partner)
