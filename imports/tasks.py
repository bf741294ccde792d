"""Celery tasks of imports: run a stored upload, sweep the runs whose worker stopped, remove old
uploads. Thin, with keyword-only primitive arguments, calling the services.

`run_import` is acknowledged when it starts (not `acks_late`): a worker that dies leaves its run
to the sweeper, which fails it saying so, and a person starts it again from its stored upload;
a redelivery hours later (Redis' visibility timeout) would surprise more than help.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django_scopes import scope

from imports import services
from imports.models import ImportRun

logger = logging.getLogger(__name__)

TIME_LIMIT_MINUTES = settings.IMPORT_TIME_LIMIT_MINUTES


@shared_task(
    name="imports.run_import",
    soft_time_limit=TIME_LIMIT_MINUTES * 60,
    time_limit=TIME_LIMIT_MINUTES * 60 + 300,
)
def run_import(*, run_id: int, attempt: int) -> str:
    """Runs attempt `attempt` of a queued run from its stored upload; returns its outcome."""
    run = services.import_run_claim(run_id=run_id, attempt=attempt)
    if run is None:
        logger.info("Import %s attempt %s is not queued any more; skipped", run_id, attempt, extra={"run_id": run_id})
        return "skipped"
    try:
        with scope(partner=run.partner):
            return str(services.import_run_stored(run=run).status)
    except SoftTimeLimitExceeded:
        services.import_run_timed_out(run_id=run_id, minutes=TIME_LIMIT_MINUTES)
        return "failed"
    except Exception:  # recorded on the run and logged (without the data) by the service
        return "failed"


@shared_task(name="imports.sweep_stopped_runs")
def sweep_stopped_runs() -> int:
    """The beat entry (every 5 minutes): fails the runs whose worker stopped."""
    return services.imports_sweep()


@shared_task(name="imports.remove_old_uploads")
def remove_old_uploads() -> int:
    """The beat entry (daily): removes the stored uploads past their retention."""
    return services.imports_remove_old_uploads()


def import_enqueue(run: ImportRun) -> None:
    """Queues the run once the current transaction commits. A broker that is down never fails
    the caller: publishing gives up quickly (settings) and the run fails saying it could not be
    queued, its upload kept so that it can be started again."""

    def publish() -> None:
        expires = settings.IMPORT_QUEUE_EXPIRES_HOURS * 3600
        try:
            run_import.apply_async(kwargs={"run_id": run.pk, "attempt": run.attempts}, expires=expires)
        except Exception:
            logger.exception("Could not queue import %s", run.pk, extra={"run_id": run.pk})
            services.import_not_queued(run=run)

    transaction.on_commit(publish)
