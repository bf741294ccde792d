"""Reads of vendor connections, pulls and customers' collection state. Every selector takes the
partner as a required keyword; none returns the connection's secret."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Partner
from collection.models import CustomerSync, PullRun, VendorConnection


def connection_get(*, partner: Partner) -> VendorConnection | None:
    return VendorConnection.objects.filter(partner=partner).defer("encrypted_secret").first()


def customer_sync_list(*, partner: Partner) -> QuerySet[CustomerSync]:
    """Each customer's collection state, failing ones first, then by name."""
    return CustomerSync.objects.filter(partner=partner).order_by("-failures", "name", "tenant_id")


def pull_run_list(*, partner: Partner) -> QuerySet[PullRun]:
    return PullRun.objects.filter(partner=partner).order_by("-started_at", "-id")


def latest_pull(*, partner: Partner) -> PullRun | None:
    return pull_run_list(partner=partner).first()
