"""Celery tasks of collection: thin, on the `collection` queue (settings.CELERY_TASK_ROUTES)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from django.db import transaction
from django_scopes import scope

from collection import services
from collection.models import PullRun, PullTrigger

logger = logging.getLogger(__name__)


# A first pull may take most of a day (the report API's pace: docs/collection.md). It ends before
# the next night's (23 h), queueing the recompute of what it imported; the next pull goes on where
# it stopped. Its ledger row (PullRun) is claimed once, so a redelivered task never runs it twice.
@shared_task(name="collection.pull", soft_time_limit=23 * 3600, time_limit=23 * 3600 + 300)
def pull(*, run_id: int) -> str:
    run = services.pull_claim(run_id=run_id)
    if run is None:
        logger.info("Pull %s is taken by a worker or has ended; skipped", run_id, extra={"pull_id": run_id})
        return "skipped"
    with scope(partner=run.partner):
        return services.vendor_pull(run=run).status


@shared_task(name="collection.nightly_pull")
def nightly_pull() -> int:
    """The beat entry (VENDOR_PULL_AT, before the nightly recompute): one pull per connected
    partner and night; ends the pulls whose worker stopped."""
    services.pulls_sweep()
    started = 0
    for partner in services.connected_partners():
        with scope(partner=partner):
            run = services.pull_start(partner=partner, trigger=PullTrigger.NIGHTLY)
        if run is None:
            continue
        try:
            pull.delay(run_id=run.pk)
        except Exception:  # the broker is down: this night's pull ends failed, saying why; the others go on
            logger.exception("Could not queue pull %s", run.pk)
            with scope(partner=partner):
                services.pull_not_queued(run=run)
            continue
        started += 1
    return started


def pull_enqueue(*, run: PullRun, on_failure: Callable[[], None] | None = None) -> None:
    """Queues a claimed pull once the transaction commits; a broker that is down ends the pull as
    failed, and `on_failure` lets the caller say so."""

    def publish() -> None:
        try:
            pull.delay(run_id=run.pk)
        except Exception:
            logger.exception("Could not queue pull %s", run.pk)
            services.pull_not_queued(run=run)
            if on_failure is not None:
                on_failure()

    transaction.on_commit(publish)
