"""Email that works: configured by EMAIL_URL, built and sent by Celery tasks (never in the request),
retried on SMTP errors, plain text without HTML escaping, and no link or token in any log. The
messages go through a real SMTP server (aiosmtpd) that the test starts on a loopback port."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import re
import smtplib
import subprocess
import sys
import time

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.db import OperationalError, connection
from django.test import Client

from accounts import services, tasks
from accounts.models import Invitation, Partner
from accounts.roles import Role
from partnerinsights.celery import app as celery_app
from partnerinsights.settings import BASE_DIR, email_settings
from tests.conftest import client_for
from tests.processes import ROOT, celery_worker, free_port, private_folder, project_env, wait_for

NEW_PASSWORD = "a-Fresh-pass-2024!"
HOSTILE_NAME = 'Dev <Ops> & "Co"'


class Inbox:
    """An aiosmtpd handler that keeps what it accepts; it can answer 451 (try later) a few times
    or refuse recipients for good (550)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list = []
        self.busy = 0
        self.refused: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.busy:
            self.busy -= 1
            return "451 4.3.0 Try again later"
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port; yields (inbox, its EMAIL_URL)."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(smtp, settings):
    """This process's mail settings as EMAIL_URL makes them (tests otherwise use Django's outbox)."""
    inbox, url = smtp
    for name, value in email_settings(url).items():
        setattr(settings, name, value)
    settings.DEFAULT_FROM_EMAIL = "Partner Insights <insights@alpha.example>"
    return inbox


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def plain_body(message) -> str:
    return message.get_body(("plain",)).get_content()


def link_path(text: str, path: str) -> str:
    (link,) = re.findall(rf"http://testserver({re.escape(path)}\S+)", text)
    return link


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "",
            {
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(BASE_DIR / "var" / "mail"),
            },
        ),
        (
            "smtp+tls://us%40er:p%2Fa%40ss@mail.example.com:587",
            {
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "mail.example.com",
                "EMAIL_PORT": 587,
                "EMAIL_HOST_USER": "us@er",
                "EMAIL_HOST_PASSWORD": "p/a@ss",
                "EMAIL_USE_TLS": True,
                "EMAIL_USE_SSL": False,
            },
        ),
        ("smtp+ssl://mail.example.com:465", {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True, "EMAIL_USE_TLS": False}),
        ("smtp://127.0.0.1:2525", {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": 2525, "EMAIL_HOST_USER": ""}),
        ("consolemail://", {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}),
        (
            "filemail:///srv/mail",
            {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": "/srv/mail"},
        ),
    ],
)
def test_email_url_gives_djangos_email_settings(url, expected):
    config = email_settings(url)
    assert {name: config[name] for name in expected} == expected


def settings_in_a_process(**env: str) -> subprocess.CompletedProcess:
    script = (
        "import json, django; from django.conf import settings; django.setup(); "
        "names = [n for n in dir(settings) if n.startswith(('EMAIL_', 'DEFAULT_FROM'))]; "
        "print(json.dumps({n: getattr(settings, n) for n in names}))"
    )
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("EMAIL_", "DEFAULT_FROM"))}
    environment = {**clean, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "partnerinsights.settings", **env}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_the_settings_read_email_url_and_default_from_email():
    done = settings_in_a_process(
        EMAIL_URL="smtp+tls://me:s3cret@smtp.example.com:587", DEFAULT_FROM_EMAIL="pi@example.com"
    )
    values = json.loads(done.stdout)
    assert (values["EMAIL_HOST"], values["EMAIL_PORT"], values["EMAIL_USE_TLS"]) == ("smtp.example.com", 587, True)
    assert (values["EMAIL_HOST_USER"], values["EMAIL_HOST_PASSWORD"], values["DEFAULT_FROM_EMAIL"]) == (
        "me",
        "s3cret",
        "pi@example.com",
    )
    default = json.loads(settings_in_a_process().stdout)
    assert default["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert default["EMAIL_FILE_PATH"] == str(BASE_DIR / "var" / "mail")


def test_the_old_email_backend_variable_alone_is_refused_plainly():
    done = settings_in_a_process(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
    assert done.returncode != 0
    assert "EMAIL_BACKEND is no longer read: set EMAIL_URL" in done.stderr


def test_mail_tasks_retry_with_backoff_on_the_default_queue():
    for task in (tasks.send_invitation, tasks.send_member_invitation, tasks.send_password_reset):
        assert task.acks_late
        assert {smtplib.SMTPException, OSError} <= set(task.autoretry_for)
        assert (task.retry_backoff, task.retry_jitter, task.max_retries) == (30, True, 8)
        assert celery_app.amqp.router.route({}, task.name)["queue"].name == "default"


# --- through a real SMTP server --------------------------------------------------------------


def test_an_invitation_goes_through_smtp_as_plain_text_with_its_link_intact(partner, staff, smtp_settings, committed):
    Partner.objects.filter(pk=partner.pk).update(name="Alpha <Cloud> & Co")
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    response = committed(
        admin.post, "/staff/invite/", {"email": "Nia@Alpha.example", "role": "sales_agent", "full_name": HOSTILE_NAME}
    )
    assert response.status_code == 302
    (envelope,), (message,) = smtp_settings.envelopes, smtp_settings.messages
    assert (envelope.mail_from, envelope.rcpt_tos) == ("insights@alpha.example", ["nia@alpha.example"])
    assert message["To"] == "nia@alpha.example"
    assert message["Subject"] == "You are invited to Partner Insights for Alpha <Cloud> & Co"
    assert message.get_content_type() == "text/plain"  # no HTML alternative
    body = plain_body(message)
    assert f"Hello {HOSTILE_NAME}," in body
    assert "for Alpha <Cloud> & Co as Sales agent" in body
    assert "&lt;" not in body
    assert "&amp;" not in body
    assert "&quot;" not in body
    browser = Client()
    form = browser.get(link_path(body, "/accounts/invitation/"), follow=True)
    assert "Join Alpha &lt;Cloud&gt; &amp; Co" in form.content.decode()  # the page escapes, the mail does not
    browser.post(
        form.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD, "full_name": HOSTILE_NAME},
    )
    assert Invitation.objects.get().accepted_at is not None


def test_a_password_reset_goes_through_smtp(staff, smtp_settings, committed):
    committed(Client().post, "/accounts/password/reset/", {"email": "Sales_Agent@alpha.example"})
    (message,) = smtp_settings.messages
    assert (message["To"], message["Subject"]) == (
        "sales_agent@alpha.example",
        "Choose a new Partner Insights password",
    )
    assert "/accounts/reset/" in plain_body(message)


def test_an_smtp_server_that_answers_try_later_gets_the_mail_on_a_retry(partner, staff, smtp_settings):
    invitation = services.invitation_create(
        partner=partner, email="nia@alpha.example", role=Role.SALES_AGENT, invited_by=staff[Role.GLOBAL_ADMIN]
    )
    smtp_settings.busy = 2  # 451 twice
    # Eager retries run at once (a worker waits the backoff) when failures do not propagate.
    propagates, celery_app.conf.task_eager_propagates = celery_app.conf.task_eager_propagates, False
    try:
        result = tasks.send_invitation.apply(kwargs={"invitation_id": invitation.pk, "site_url": "http://testserver"})
    finally:
        celery_app.conf.task_eager_propagates = propagates
    assert result.successful()
    assert [m["To"] for m in smtp_settings.messages] == ["nia@alpha.example"]
    invitation.refresh_from_db()
    assert invitation.sent_at is not None


def test_a_recipient_refused_for_good_is_not_retried_and_logged_without_the_link(partner, staff, smtp_settings, caplog):
    invitation = services.invitation_create(
        partner=partner, email="gone@alpha.example", role=Role.SALES_AGENT, invited_by=staff[Role.GLOBAL_ADMIN]
    )
    smtp_settings.refused.add("gone@alpha.example")
    tasks.send_invitation.apply(kwargs={"invitation_id": invitation.pk, "site_url": "http://testserver"})
    assert smtp_settings.messages == []
    invitation.refresh_from_db()
    assert invitation.sent_at is None  # the staff page says "not yet"
    assert "refused the recipient of a invitation email" in caplog.text
    assert "/accounts/invitation/" not in caplog.text


# --- never inside a request, no secret in a log ------------------------------------------------


def test_the_request_only_queues_ids_never_a_link(staff, committed, monkeypatch):
    queued = []
    monkeypatch.setattr(tasks.send_invitation, "delay", lambda **kwargs: queued.append(kwargs))
    monkeypatch.setattr(tasks.send_password_reset, "delay", lambda **kwargs: queued.append(kwargs))
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    assert (
        committed(admin.post, "/staff/invite/", {"email": "nia@alpha.example", "role": "sales_agent"}).status_code
        == 302
    )
    assert committed(Client().post, "/accounts/password/reset/", {"email": "nobody@alpha.example"}).status_code == 302
    invitation = Invitation.objects.get()
    assert queued == [
        {"invitation_id": invitation.pk, "site_url": "http://testserver"},
        {"email": "nobody@alpha.example", "site_url": "http://testserver"},
    ]
    assert mail.outbox == []  # nothing was sent by the request itself


def test_a_broker_that_is_down_never_fails_the_invitation(staff, committed, monkeypatch, caplog):
    def down(**kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_invitation, "delay", down)
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    response = committed(
        admin.post, "/staff/invite/", {"email": "nia@alpha.example", "role": "sales_agent"}, follow=True
    )
    assert response.status_code == 200
    assert "not yet" in response.content.decode()  # pending, unsent: "Resend" is offered
    assert "Could not queue the accounts.send_invitation task" in caplog.text


def test_no_link_or_token_reaches_a_log(partner, staff, smtp_settings, committed, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    committed(admin.post, "/staff/invite/", {"email": "nia@alpha.example", "role": "sales_agent"})
    invitation = Invitation.objects.get()
    committed(admin.post, f"/staff/invitations/{invitation.pk}/resend/")
    committed(Client().post, "/accounts/password/reset/", {"email": staff[Role.SALES_AGENT].email})
    bodies = [plain_body(message) for message in smtp_settings.messages]
    links = [link_path(body, "/accounts/invitation/") for body in bodies[:2]] + [
        link_path(bodies[2], "/accounts/reset/")
    ]
    browser = Client()
    form = browser.get(links[1], follow=True)
    browser.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    form = browser.get(links[2], follow=True)
    browser.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    secrets = [link.strip("/").rsplit("/", 1)[1] for link in links]  # the tokens of the links
    assert len(set(secrets)) == 3
    output = capsys.readouterr()
    ours = [record for record in caplog.records if not record.name.startswith("mail.log")]  # but the test's server
    logged = "\n".join([output.out, output.err, *(f"{r.getMessage()} {r.args} {r.exc_text}" for r in ours)])
    assert "send_invitation" in logged  # the log was captured
    for secret in [*secrets, *links]:
        assert secret not in logged


# --- a real worker -----------------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the real Redis (CI sets REDIS_URL)")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_sends_an_invitation_to_the_smtp_server_of_email_url(partner, staff, smtp):
    inbox, url = smtp
    invitation = services.invitation_create(
        partner=partner, email="nia@alpha.example", role=Role.SALES_AGENT, invited_by=staff[Role.GLOBAL_ADMIN]
    )
    database = connection.settings_dict
    assert connection.vendor == "postgresql", "the worker needs to reach the test database"
    env = project_env(
        database_url=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        redis_url=os.environ["REDIS_URL"],
        EMAIL_URL=url,
        DEFAULT_FROM_EMAIL="insights@alpha.example",
    )
    queue = f"test-mail-{os.getpid()}-{time.monotonic_ns()}"
    celery_app.conf.task_always_eager = False
    try:
        with private_folder() as folder, celery_worker(env, folder / "worker.log", queue=queue):
            tasks.send_invitation.apply_async(
                kwargs={"invitation_id": invitation.pk, "site_url": "https://insights.example.com"}, queue=queue
            )
            wait_for(lambda: inbox.messages, timeout=60, what="the worker's email", log=folder / "worker.log")
            recorded = Invitation.objects.filter(pk=invitation.pk, sent_at__isnull=False)  # saved after sending
            wait_for(recorded.exists, timeout=30, what="the invitation's sent_at", log=folder / "worker.log")
            log = (folder / "worker.log").read_text()
        (message,) = inbox.messages
        assert message["To"] == "nia@alpha.example"
        assert re.search(r"https://insights\.example\.com/accounts/invitation/\S+/", plain_body(message))
        assert "/accounts/invitation/" not in log
        invitation.refresh_from_db()
        assert invitation.sent_at is not None
    finally:
        celery_app.conf.task_always_eager = True
