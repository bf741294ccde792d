"""The Celery app: configured from Django settings (CELERY_* names), tasks found in each app."""

import logging.config
import os
from pathlib import Path
from typing import Any

import structlog
from celery import Celery, Task, bootsteps, signals
from django.conf import settings
from django_structlog.celery.receivers import CeleryReceiver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnerinsights.settings")

app = Celery("partnerinsights")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class TaskLogContext(bootsteps.Step):
    """Workers bind each task's task_id (and the ids of the request that queued it) to its log
    lines. django-structlog's own step would also connect the publishing receivers a second
    time (its app already does): every "task_enqueued" line would show twice."""

    def __init__(self, parent: object, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        receiver = CeleryReceiver()
        signals.task_prerun.connect(receiver.receiver_task_prerun)
        signals.task_retry.connect(receiver.receiver_task_retry)
        signals.task_success.connect(receiver.receiver_task_success)
        signals.task_failure.connect(receiver.receiver_task_failure)
        signals.task_revoked.connect(receiver.receiver_task_revoked)
        signals.task_unknown.connect(receiver.receiver_task_unknown)
        signals.task_rejected.connect(receiver.receiver_task_rejected)
        self.receiver = receiver  # signals hold their receivers weakly


app.steps["worker"].add(TaskLogContext)


@signals.setup_logging.connect
def _structured_logging(**kwargs: object) -> None:
    """Workers and beat log as the web does (settings.LOGGING), not in Celery's own format."""
    logging.config.dictConfig(settings.LOGGING)


@signals.task_postrun.connect
def _forget_task_context(task: Task[Any, Any], **kwargs: object) -> None:
    """A worker's lines between tasks (beat, shutdown) carry no finished task's id; an eager
    task keeps the context of the request that ran it."""
    if not task.request.is_eager:
        structlog.contextvars.clear_contextvars()


@app.on_after_configure.connect
def _create_filesystem_queue(sender: Celery, **kwargs: object) -> None:
    """The file-system broker (used when REDIS_URL is unset) needs its folders to exist."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
