"""Celery tasks that send the accounts' emails, on the `default` queue, never inside a request.

Each task gets ids, never a link: the message (with its signed link) is built in the worker, so
no token crosses the broker or reaches a log. SMTP errors retry with backoff; a delivery is at
least once (`acks_late`).
"""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from celery import Task, shared_task
from django.core.mail import EmailMessage
from django.db import transaction

from accounts import services

logger = logging.getLogger(__name__)

MAIL_TASK: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (smtplib.SMTPException, OSError),
    "retry_backoff": 30,
    "retry_backoff_max": 3600,
    "retry_jitter": True,
    "max_retries": 8,
    "soft_time_limit": 60,
    "time_limit": 90,
}


def _send(message: EmailMessage, kind: str) -> bool:
    """Sends `message`; False when the server refuses its recipient for good (no retry)."""
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused:
        logger.error("The mail server refused the recipient of a %s email; not retrying", kind)
        return False
    return True


@shared_task(name="accounts.send_invitation", **MAIL_TASK)
def send_invitation(*, invitation_id: int, site_url: str) -> None:
    """Emails a pending invitation (or the notice that its address already has an account)."""
    message = services.invitation_message(invitation_id=invitation_id, site_url=site_url)
    if message is not None and _send(message, "invitation"):
        services.invitation_mark_sent(invitation_id=invitation_id)


@shared_task(name="accounts.send_member_invitation", **MAIL_TASK)
def send_member_invitation(*, member_id: int, site_url: str) -> None:
    """Emails a member who never signed in a new link to choose their password."""
    message = services.member_invitation_message(member_id=member_id, site_url=site_url)
    if message is not None:
        _send(message, "invitation")


@shared_task(name="accounts.send_password_reset", **MAIL_TASK)
def send_password_reset(*, email: str, site_url: str) -> None:
    """Emails a "forgot password" link to the active account of `email`, if there is one."""
    message = services.password_reset_message(email=email, site_url=site_url)
    if message is not None:
        _send(message, "password reset")


def mail_enqueue(task: Task[..., None], **arguments: Any) -> None:
    """Queues a mail task once the current transaction commits. A broker that is down never
    fails the request: the error is logged (without the arguments) and a resend works later."""

    def publish() -> None:
        try:
            task.delay(**arguments)
        except Exception:
            logger.exception("Could not queue the %s task", task.name)

    transaction.on_commit(publish)
