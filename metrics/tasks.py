"""Celery tasks: thin, keyword-only primitive arguments, calling the services.

Reliability (shared/RELIABILITY.md): `acks_late` with `reject_on_worker_lost` redelivers the
task of a killed worker; the run ledger caps attempts (a poison date gives up); retries back off
on database errors; the nightly fan-out enqueues one task per partner.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django_scopes import scope

from accounts.models import Partner
from metrics import services
from metrics.models import Trigger

logger = logging.getLogger(__name__)


@shared_task(
    name="metrics.recompute_dates",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=services.MAX_ATTEMPTS,
    soft_time_limit=50 * 60,
    time_limit=55 * 60,
)
def recompute_dates(*, partner_id: int, dates: list[str], trigger: str) -> list[str]:
    """Recomputes the given ISO dates of one partner; returns the dates done. Arguments cross the
    broker as JSON: dates as ISO text, the trigger as its value."""
    partner = Partner.objects.get(pk=partner_id)
    with scope(partner=partner):
        try:
            runs = services.metrics_recompute_dates(
                partner=partner, dates=[dt.date.fromisoformat(d) for d in dates], trigger=Trigger(trigger)
            )
        except services.GaveUp:
            logger.exception("Giving up on a recompute of %s", partner.slug)
            return []
        except DatabaseError:
            logger.warning("Recompute of %s failed on the database; retrying", partner.slug)
            raise
    return [run.as_of.isoformat() for run in runs]


@shared_task(name="metrics.nightly_recompute")
def nightly_recompute() -> int:
    """The beat entry: one task per partner recomputing yesterday and the nights of the past
    week that did not succeed (`services.nightly_dates`)."""
    partners = list(Partner.objects.all())
    for partner in partners:
        with scope(partner=partner):
            dates = [as_of.isoformat() for as_of in services.nightly_dates(partner=partner)]
        recompute_dates.delay(partner_id=partner.pk, dates=dates, trigger=Trigger.NIGHTLY)
    return len(partners)


RECOMPUTE_NOT_QUEUED = (
    "The metrics could not be queued for recomputation (the task queue is unreachable): "
    "they will include this data after the nightly recompute."
)


def recompute_enqueue(
    *, partner: Partner, dates: list[dt.date], trigger: Trigger, on_failure: Callable[[], None] | None = None
) -> None:
    """Queues a recompute once the current transaction commits. A broker that is down never
    fails the caller: the dates stay stale until the nightly run, and `on_failure` (called
    instead) lets the caller tell the user so."""

    def publish() -> None:
        try:
            recompute_dates.delay(partner_id=partner.pk, dates=[d.isoformat() for d in dates], trigger=trigger)
        except Exception:
            logger.exception("Could not queue the recompute of %s; the nightly run will do it", partner.slug)
            if on_failure is not None:
                on_failure()

    transaction.on_commit(publish)
