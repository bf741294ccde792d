"""The Celery app: configured from Django settings (CELERY_* names), tasks found in each app."""

import logging.config
import os
from pathlib import Path
from typing import Any

import structlog
from celery import Celery, Task
from celery.signals import setup_logging, task_postrun
from django.conf import settings
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnerinsights.settings")

app = Celery("partnerinsights")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Workers bind each task's task_id (and the ids of the request that queued it) to its log lines.
app.steps["worker"].add(DjangoStructLogInitStep)


@setup_logging.connect
def _structured_logging(**kwargs: object) -> None:
    """Workers and beat log as the web does (settings.LOGGING), not in Celery's own format."""
    logging.config.dictConfig(settings.LOGGING)


@task_postrun.connect
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
