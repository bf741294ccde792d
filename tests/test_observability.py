"""What operators read: structured logs (request, user and partner ids on requests, task ids on
jobs, phases of a recompute with rows and durations, no secrets or personal data), error reports
to Sentry (a real HTTP server started here receives them), and the Prometheus endpoint."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from celery import Celery
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.roles import Role
from core.observability import formatter
from imports.models import ImportRun
from metrics import engine
from metrics.models import RecomputeRun, RunStatus, Trigger
from metrics.services import metrics_recompute, yesterday
from partnerinsights import monitoring
from tests import factories
from tests.conftest import SNAPSHOT_DATE, client_for, token_client_for, upload
from tests.processes import ROOT, celery_worker, free_port, manage, private_folder, python_process, wait_for

# --- logs -------------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict]]]:
    """Every log record from now on, rendered as production renders it (JSON lines); returns a
    function giving the records so far."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    config = formatter("json")
    handler.setFormatter(config.pop("()")(**config))
    logging.getLogger().addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().removeHandler(handler)


def events(records: list[dict], name: str) -> list[dict]:
    return [record for record in records if record["event"] == name]


def test_a_request_logs_its_request_user_and_partner_ids(staff, partner, json_log):
    user = staff[Role.ADMIN_AGENT]
    assert client_for(user).get("/customers/?q=somebody").status_code == 200
    (finished,) = events(json_log(), "request_finished")
    assert finished["user_id"] == user.pk
    assert finished["partner_id"] == partner.pk
    assert len(finished["request_id"]) == 36  # a UUID
    assert (finished["request"], finished["code"], finished["level"]) == ("GET /customers/", 200, "info")
    assert {"timestamp", "logger"} <= finished.keys()
    started = events(json_log(), "request_started")
    assert [record["request_id"] for record in started] == [finished["request_id"]]


def test_an_api_request_logs_the_tokens_user_and_partner(staff, partner, json_log):
    user = staff[Role.SALES_AGENT]
    assert token_client_for(user).get("/api/customers/").status_code == 200
    (finished,) = events(json_log(), "request_finished")
    assert (finished["user_id"], finished["partner_id"]) == (user.pk, partner.pk)


def test_password_links_and_query_strings_stay_out_of_the_log(db, json_log):
    Client().get("/accounts/reset/MQ/d2f1k7-0123456789abcdef0123456789abcdef/?next=/x")
    (finished,) = events(json_log(), "request_finished")
    assert finished["request"] == "GET /accounts/reset/…/…/"
    assert "0123456789abcdef" not in json.dumps(json_log())


def test_a_server_error_logs_no_password_link_and_no_query_string(db, json_log, monkeypatch):
    """Django's error log of a 500 passes the request itself (whose repr is its whole URL)."""

    def broken(*args, **kwargs):
        raise RuntimeError("the database is gone")

    monkeypatch.setattr("django.contrib.auth.views.PasswordResetConfirmView.get_user", broken)
    Client(raise_request_exception=False).get("/accounts/reset/MQ/d2f1k7-0123456789abcdef0123456789abcdef/?next=/x")
    (error,) = [record for record in json_log() if record["logger"] == "django.request"]
    assert (error["level"], error["status_code"]) == ("error", 500)
    assert error["request"] == "GET /accounts/reset/…/…/"
    assert "RuntimeError: the database is gone" in error["exception"]
    assert "0123456789abcdef" not in json.dumps(json_log())
    assert "next=" not in json.dumps(json_log())


def test_failed_sign_ins_log_no_password_and_no_email(staff, json_log):
    user, wrong = staff[Role.SALES_AGENT], "Wr0ng-horse-battery-Hunter2"
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        Client().post("/accounts/login/", {"username": user.email, "password": wrong})
    records = json_log()
    text = json.dumps(records)
    assert any(record["logger"].startswith("axes") for record in records)  # the failures were logged
    assert events(records, "request_finished")[-1]["code"] == 429  # and the account locked
    assert wrong not in text
    assert user.email not in text
    assert user.email.upper() not in text


def test_a_recompute_logs_each_phase_with_its_rows_and_duration(other_partner, bravo, json_log):
    metrics_recompute(partner=other_partner, as_of=SNAPSHOT_DATE, trigger=Trigger.COMMAND)
    records = json_log()
    phases = events(records, "recompute_phase")
    assert [phase["phase"] for phase in phases] == ["delete", *[step.name for step in engine.STEPS]]
    for phase in phases:
        assert (phase["partner_id"], phase["as_of"]) == (other_partner.pk, SNAPSHOT_DATE.isoformat())
        assert isinstance(phase["rows"], int)
        assert phase["rows"] >= 0
        assert isinstance(phase["duration_ms"], float)
        assert phase["duration_ms"] >= 0
    rows = {phase["phase"]: phase["rows"] for phase in phases}
    assert rows["delete"] > 0  # the day's earlier snapshots
    assert rows["SKU grain"] == 1  # bravo: one customer, one SKU
    (finished,) = events(records, "recompute_finished")
    assert finished["partner_id"] == other_partner.pk
    assert isinstance(finished["duration_ms"], int)


def test_an_import_logs_its_phases_as_fields_without_the_files_content(staff, partner, json_log):
    files = [SimpleUploadedFile("customers.csv", b"customer_id,name\nC-LOG-1,Secret Name Ltd\n")]
    upload(client_for(staff[Role.ADMIN_AGENT]), files)
    records = [record for record in json_log() if record.get("logger", "").startswith("imports.")]
    run = ImportRun.objects.get()
    phases = [record for record in records if "phase" in record and record.get("run_id") == run.pk]
    assert {"reading", "checking", "writing"} <= {record["phase"] for record in phases}
    assert all(record["partner_id"] == partner.pk for record in phases)
    finished = [record for record in records if record.get("rows_created") is not None]
    assert finished
    assert finished[-1]["rows_created"] == 1
    assert "Secret Name" not in json.dumps(json_log())


def test_a_workers_log_lines_carry_the_task_id():
    """A real worker on the file-system broker: a task's lines carry its task_id, and the tasks
    it queues carry their own with the parent's."""
    with private_folder() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
        env.update(
            DEBUG="true",
            DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
            CELERY_QUEUE_DIR=str(folder / "queue"),
            LOG_FORMAT="json",
        )
        manage(env, "migrate", "-v", "0")
        manage(env, "create_partner", "alpha", "--name", "Alpha")
        probe = Celery("log-probe", broker="filesystem://", set_as_current=False)
        queue = str(folder / "queue" / "queue")
        probe.conf.update(
            broker_transport_options={
                "data_folder_in": queue,
                "data_folder_out": queue,
                "control_folder": str(folder / "queue" / "control"),
            },
            task_routes=settings.CELERY_TASK_ROUTES,
        )
        log = folder / "worker.log"

        def records() -> list[dict]:
            return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]

        with celery_worker(env, log):
            wait_for(lambda: " ready." in log.read_text(), timeout=60, what="the worker", log=log)
            task_id = probe.send_task("metrics.nightly_recompute").id
            wait_for(lambda: events(records(), "recompute_finished"), timeout=60, what="the recompute", log=log)
        lines = records()
    (started,) = [r for r in events(lines, "task_started") if r["task"] == "metrics.nightly_recompute"]
    assert started["task_id"] == task_id
    (queued,) = [r for r in events(lines, "task_enqueued") if r.get("task_id") == task_id]
    assert queued["child_task_name"] == "metrics.recompute_dates"
    phases = events(lines, "recompute_phase") + events(lines, "recompute_finished")
    assert len(phases) == len(engine.STEPS) + 2
    assert {(r["task_id"], r["parent_task_id"]) for r in phases} == {(queued["child_task_id"], task_id)}


# --- error reports ----------------------------------------------------------------------------


class _SentryStub(BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def test_an_unhandled_error_is_reported_to_sentry_without_personal_data():
    """SENTRY_DSN set: a request to gunicorn that fails (its database has no tables) reaches the
    Sentry server (a stub started here) without cookies, tokens or the query string."""
    _SentryStub.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SentryStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secrets = {"Cookie": "sessionid=cookie-s3cret", "Authorization": "Bearer pi_tok3n-s3cret"}
    with private_folder() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
        env.update(
            DEBUG="true",
            DATABASE_URL=f"sqlite:///{folder / 'no-tables.sqlite3'}",
            CELERY_QUEUE_DIR=str(folder / "queue"),
            SENTRY_DSN=f"http://public-key@127.0.0.1:{server.server_port}/42",
        )
        port = free_port()
        try:
            with python_process(
                env, folder / "web.log", "-m", "gunicorn", "partnerinsights.wsgi", "-b", f"127.0.0.1:{port}"
            ):
                url = f"http://127.0.0.1:{port}/customers/?q=find-me"
                wait_for(lambda: _status(url, secrets) == 500, timeout=60, what="gunicorn", log=folder / "web.log")
                wait_for(lambda: _SentryStub.received, timeout=30, what="the error report")
        finally:
            server.shutdown()
    payloads = [json.loads(line) for body in _SentryStub.received for line in body.splitlines() if line.strip()]
    errors = [payload for payload in payloads if "exception" in payload]
    assert errors
    for error in errors:
        assert error["exception"]["values"][-1]["type"] == "OperationalError"
        assert error["request"]["url"] == f"http://127.0.0.1:{port}/customers/"
        assert error["request"]["headers"]["Authorization"] == "[Filtered]"
        assert error["environment"] == "development"
        assert "ip_address" not in error.get("user", {})
    sent = b"".join(_SentryStub.received).decode()
    for secret in ("cookie-s3cret", "pi_tok3n-s3cret", "find-me"):
        assert secret not in sent


def _status(url: str, headers: dict[str, str]) -> int:
    try:
        return requests.get(url, headers=headers, timeout=10).status_code
    except requests.ConnectionError:
        return 0


# --- the Prometheus endpoint ------------------------------------------------------------------

TOKEN = "scrape-" + "k" * 40


def scrape(client: Client | None = None) -> dict[tuple[str, str], float]:
    """The exposition of /metrics, parsed: (metric, partner slug) → value."""
    response = (client or Client()).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, sample.labels.get("partner", "")): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_metrics_are_off_without_a_token_and_refuse_anyone_without_it(settings, partner):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    settings.METRICS_TOKEN = TOKEN
    for authorization in ("", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN):
        refused = Client().get("/metrics", headers={"Authorization": authorization} if authorization else {})
        assert (refused.status_code, refused["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"')
        assert b"partnerinsights" not in refused.content
    assert scrape()[("partnerinsights_partners", "")] == 1


def test_short_metrics_tokens_are_refused_at_start():
    env = {"DEBUG": "true", "METRICS_TOKEN": "short", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "METRICS_TOKEN must be at least 32 characters" in done.stderr


def _run(partner, as_of: dt.date, **fields) -> RecomputeRun:
    return RecomputeRun.objects.create(partner=partner, as_of=as_of, trigger=Trigger.NIGHTLY, **fields)


def test_the_exposition_gives_days_behind_failures_and_durations_per_partner(settings, partner, other_partner):
    settings.METRICS_TOKEN = TOKEN
    now, end = timezone.now(), yesterday()
    ok = {"status": RunStatus.SUCCEEDED}
    _run(partner, end - dt.timedelta(days=4), **ok, published_at=now, finished_at=now - dt.timedelta(hours=2),
         duration_ms=4000, started_at=now - dt.timedelta(days=3))  # fmt: skip
    _run(partner, end - dt.timedelta(days=3), **ok, published_at=now, finished_at=now - dt.timedelta(hours=1),
         duration_ms=1500)  # fmt: skip
    _run(partner, end - dt.timedelta(days=2), status=RunStatus.FAILED, error="boom")
    _run(partner, end - dt.timedelta(days=20), status=RunStatus.FAILED, started_at=now - dt.timedelta(days=9))
    _run(partner, end - dt.timedelta(days=1))  # running: no duration, not published
    imports = [
        (RunStatus.FAILED, now - dt.timedelta(hours=3), 30),
        (RunStatus.SUCCEEDED, now - dt.timedelta(hours=2), 90),
        (RunStatus.FAILED, now - dt.timedelta(days=8), 600),  # too old for the counts and the longest
    ]
    for status, started, seconds in imports:
        ImportRun.objects.create(
            partner=partner,
            origin=ImportRun.Origin.COMMAND,
            source_name="x",
            status=status,
            started_at=started,
            finished_at=started + dt.timedelta(seconds=seconds),
        )
    ImportRun.objects.create(partner=partner, origin=ImportRun.Origin.API, source_name="y")  # running

    assert scrape() == {
        ("partnerinsights_snapshot_days_behind", "alpha"): 3.0,
        ("partnerinsights_snapshot_days_behind", "bravo"): math.inf,
        ("partnerinsights_recompute_failed_runs", "alpha"): 1.0,
        ("partnerinsights_recompute_failed_runs", "bravo"): 0.0,
        ("partnerinsights_import_failed_runs", "alpha"): 1.0,
        ("partnerinsights_import_failed_runs", "bravo"): 0.0,
        ("partnerinsights_recompute_last_duration_seconds", "alpha"): 1.5,
        ("partnerinsights_recompute_max_duration_seconds", "alpha"): 4.0,
        ("partnerinsights_import_last_duration_seconds", "alpha"): 90.0,
        ("partnerinsights_import_max_duration_seconds", "alpha"): 90.0,
        ("partnerinsights_partners", ""): 2.0,
    }


def test_a_scrape_costs_one_query_whatever_the_number_of_partners(partner, bravo):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            monitoring.exposition()
        return len(captured)

    two = queries()
    for number in range(5):
        extra = factories.PartnerFactory(slug=f"extra-{number}")
        _run(extra, SNAPSHOT_DATE, status=RunStatus.SUCCEEDED, published_at=timezone.now(), duration_ms=10)
    assert queries() == two == 1


def test_an_operator_signed_in_gets_no_metrics_without_the_token(settings, staff):
    """The endpoint knows only its token: a session, even a Global admin's, is not enough."""
    settings.METRICS_TOKEN = TOKEN
    assert client_for(staff[Role.GLOBAL_ADMIN]).get("/metrics").status_code == 401
