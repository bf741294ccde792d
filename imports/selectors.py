"""Reads of import runs. Every selector takes the partner as a required keyword."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import Partner
from imports.models import ImportRun


def import_run_list(*, partner: Partner) -> QuerySet[ImportRun]:
    return ImportRun.objects.filter(partner=partner).select_related("started_by")


def import_run_get(*, partner: Partner, run_id: int) -> ImportRun:
    return get_object_or_404(import_run_list(partner=partner), pk=run_id)
