"""Celery tasks: thin, calling the services (see metrics/tasks.py for the reliability notes)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from exports import services


# The ledger makes a retry or a second beat safe: partners already sent are skipped.
@shared_task(
    name="exports.send_scheduled_reports",
    autoretry_for=(services.ReportsFailed,),
    retry_backoff=60,
    retry_backoff_max=1800,
    max_retries=3,
)
def send_scheduled_reports() -> int:
    """The beat entry: sends the reports due today (in TIME_ZONE); returns how many were sent."""
    return len(services.reports_send_due(today=timezone.localdate()))
