"""Reads of metric snapshots and runs. Every selector takes the partner as a required keyword."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from accounts.models import Partner
from metrics.models import RecomputeRun


def snapshot_dates(*, partner: Partner) -> list[dt.date]:
    """The dates that have published snapshots, newest first."""
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    return list(published.order_by("-as_of").values_list("as_of", flat=True))


def latest_snapshot_date(*, partner: Partner) -> dt.date | None:
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    return published.order_by("-as_of").values_list("as_of", flat=True).first()


def recompute_run_list(*, partner: Partner) -> QuerySet[RecomputeRun]:
    return RecomputeRun.objects.filter(partner=partner).order_by("-started_at", "-as_of")
