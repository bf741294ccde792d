"""The Celery app: configured from Django settings (CELERY_* names), tasks found in each app."""

import logging.config
import os
from pathlib import Path

from celery import Celery
from celery.signals import setup_logging
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


@app.on_after_configure.connect
def _create_filesystem_queue(sender: Celery, **kwargs: object) -> None:
    """The file-system broker (used when REDIS_URL is unset) needs its folders to exist."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
