"""Imports off the request, with real processes: gunicorn (as deployed: sync workers, 30 s
timeout) and a real Celery worker on a private PostgreSQL and a private redis-server.

The upload answers at once while the import cannot even start (the test holds the partner's
import lock), and the worker completes it once the lock is let go; a worker SIGKILLed in the
middle of writing (held on a row lock of the test) leaves nothing written and a run that the
sweeper fails saying why, and "Start it again" completes it from the stored upload. A headless
Chromium watches a run's page change from "waiting" to its outcome without a reload. No sleeping:
each step waits for what a person would see.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import psycopg
import pytest
import requests
from celery import Celery
from django.conf import settings

from core.db import _lock_key
from imports.services import NOT_QUEUED
from tests.processes import (
    PrivatePostgres,
    celery_worker,
    manage,
    manage_all,
    missing_binaries,
    private_folder,
    private_postgres,
    private_redis,
    project_env,
    wait_for,
    web_server,
)

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(
        not (os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")),
        reason="process tests run where PostgreSQL and Redis are (CI sets DATABASE_URL and REDIS_URL)",
    ),
    pytest.mark.skipif(bool(missing_binaries()), reason=f"private instances: {missing_binaries()}"),
]

DATABASE = "pi_import_worker"
EMAIL, PASSWORD = "admin@alpha.example", "correct-horse-battery-staple"
TIMEOUT = 40
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STORED = "customer_id,name\nC-1,Stored One\nC-2,Stored Two\n"


@dataclasses.dataclass
class Stack:
    postgres: PrivatePostgres
    redis_url: str
    folder: Path
    env: dict[str, str]  # of the web server and the workers
    partner_id: int
    probe: Celery  # a client of the private broker

    def db(self, *, autocommit: bool = True) -> psycopg.Connection:
        return self.postgres.connect(DATABASE, autocommit=autocommit)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.db() as connection:
            return connection.execute(sql, params).fetchall()

    def run(self, run_id: int) -> tuple:
        ((status, phase, reason, attempts),) = self.query(
            "SELECT status, phase, failure_reason, attempts FROM customers_importrun WHERE id = %s", (run_id,)
        )
        return status, phase, reason, attempts

    def customers(self) -> list[tuple]:
        return self.query(
            "SELECT external_id, name FROM customers_customer WHERE partner_id = %s ORDER BY external_id",
            (self.partner_id,),
        )

    def waiting(self, statement: str) -> list[int]:
        """The server processes waiting for a lock while running `statement…`."""
        rows = self.query(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s", (f"{statement}%",)
        )
        return [pid for (pid,) in rows]

    def worker(self, log: Path, **env: str) -> contextlib.AbstractContextManager:
        return celery_worker({**self.env, **env}, log, pool="prefork", queue="imports,default")


@pytest.fixture(scope="module")
def stack() -> Stack:
    with private_folder() as folder, private_postgres(DATABASE) as postgres, private_redis() as redis_url:
        env = project_env(
            database_url=postgres.url(DATABASE),
            redis_url=redis_url,
            CELERY_QUEUE_DIR=str(folder / "celery"),
            MEDIA_ROOT=str(folder / "media"),
        )
        manage(env, "migrate", "-v", "0")
        manage(env, "create_partner", "alpha", "--name", "Alpha")
        staff = ("--partner", "alpha", "--email", EMAIL, "--role", "global_admin", "--password", PASSWORD)
        data = folder / "stored"
        data.mkdir()
        (data / "customers.csv").write_text(STORED)
        # The command imports in its own process; its recompute goes to a Redis database no worker reads.
        command_env = {**env, "REDIS_URL": redis_url[:-1] + "15"}
        manage_all(command_env, ("create_staff", *staff), ("import_data", "--partner", "alpha", str(data)))
        with postgres.connect(DATABASE) as connection:
            (partner_id,) = connection.execute("SELECT id FROM accounts_partner WHERE slug = 'alpha'").fetchone()
        probe = Celery("imports-probe", broker=redis_url, set_as_current=False)
        probe.conf.update(task_routes=settings.CELERY_TASK_ROUTES, task_default_queue="default")
        yield Stack(postgres, redis_url, folder, env, partner_id, probe)
        probe.close()


@pytest.fixture
def scratch() -> Path:
    with private_folder() as folder:
        yield folder


def _csrf_token(page: requests.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def _post(session: requests.Session, page: str, action: str = "", **fields) -> requests.Response:
    """A form of `page` posted as a browser does (its CSRF token, the page as referer), not followed."""
    token = _csrf_token(session.get(page, timeout=10))
    data = {"csrfmiddlewaretoken": token, **fields.pop("data", {})}
    headers = {"Referer": page}
    return session.post(action or page, data=data, headers=headers, timeout=30, allow_redirects=False, **fields)


def _signed_in(base: str) -> requests.Session:
    session = requests.Session()
    answer = _post(session, f"{base}/accounts/login/", data={"username": EMAIL, "password": PASSWORD})
    assert answer.status_code == 302
    return session


def _run_id(location: str) -> int:
    return int(re.search(r"/imports/(\d+)/$", location).group(1))


def test_uploads_answer_at_once_and_the_worker_imports_them(stack, scratch):
    lock = _lock_key("import", stack.partner_id)
    with (
        stack.worker(scratch / "worker.log"),
        web_server(stack.env, scratch / "web.log") as base,
        stack.db() as holder,
    ):
        session = _signed_in(base)
        token = _api_token(session, base)
        holder.execute("SELECT pg_advisory_lock(%s)", (lock,))  # no import of the partner can start
        page_upload = ("customers.csv", b"customer_id,name\nC-PAGE,From the page\n", "text/csv")
        answer = _post(session, f"{base}/imports/", files={"files": page_upload})
        assert answer.status_code == 302  # answered while the import cannot have run
        page_run = _run_id(answer.headers["Location"])
        api_zip = _zip({"customers.csv": "customer_id,name\nC-API,From the API\n"})
        accepted = requests.post(
            f"{base}/api/imports/",
            files={"file": ("import.zip", api_zip, "application/zip")},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert accepted.status_code == 202
        assert accepted.headers["Location"] == accepted.json()["url"]
        assert accepted.json()["status"] in {"queued", "running"}
        api_run = accepted.json()["id"]

        wait_for(lambda: stack.waiting("SELECT pg_advisory_xact_lock"), timeout=TIMEOUT, what="the worker to wait")
        page = session.get(f"{base}/imports/{page_run}/", timeout=10).text
        assert "Waiting for another import of this partner to end" in page
        assert stack.customers() == [("C-1", "Stored One"), ("C-2", "Stored Two")]
        holder.execute("SELECT pg_advisory_unlock(%s)", (lock,))

        for run_id in (page_run, api_run):
            wait_for(lambda r=run_id: stack.run(r)[0] == "succeeded", timeout=TIMEOUT, what=f"run {run_id}")

        def api_phase() -> str:  # a succeeded run queues its recompute after its commit, then says "done"
            answer = requests.get(
                accepted.headers["Location"], headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            return answer.json()["phase"]

        wait_for(lambda: api_phase() == "done", timeout=10, what="the API to say done")
        done = requests.get(accepted.headers["Location"], headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert (done.json()["status"], done.json()["phase"], done.json()["totals"]["created"]) == (
            "succeeded",
            "done",
            1,
        )
        assert "Import succeeded." in session.get(f"{base}/imports/{page_run}/", timeout=10).text
    assert ("C-API", "From the API") in stack.customers()
    assert ("C-PAGE", "From the page") in stack.customers()


def test_a_worker_killed_mid_import_is_swept_as_failed_and_starting_again_completes_it(stack, scratch):
    upload = b"customer_id,name\nC-1,Renamed One\nC-NEW,Written only whole\n"
    before = stack.customers()
    with web_server(stack.env, scratch / "web.log") as base:
        session = _signed_in(base)
        with stack.db(autocommit=False) as holder:
            # The import's write of customers waits on this row: it is inside its transaction.
            holder.execute(
                "SELECT id FROM customers_customer WHERE partner_id = %s AND external_id = 'C-1' FOR UPDATE",
                (stack.partner_id,),
            )
            with stack.worker(scratch / "killed.log"):
                answer = _post(session, f"{base}/imports/", files={"files": ("customers.csv", upload, "text/csv")})
                run_id = _run_id(answer.headers["Location"])
                wait_for(
                    lambda: stack.waiting("INSERT INTO customers_customer"),
                    timeout=TIMEOUT,
                    what="the worker writing",
                    log=scratch / "killed.log",
                )
                writing = re.compile(r'data-field="phase">Writing<.*data-field="rows_read">2<', re.S)
                wait_for(
                    lambda: writing.search(session.get(f"{base}/imports/{run_id}/", timeout=10).text),
                    timeout=TIMEOUT,
                    what="the run's page to show it writing",
                )
            # Leaving the block SIGKILLed the worker's whole process group, mid-statement.
            holder.rollback()
        assert stack.customers() == before  # nothing half-written
        assert stack.run(run_id)[0] == "running"  # nobody has said otherwise yet

        with stack.worker(scratch / "sweeper.log", IMPORT_STALE_SECONDS="1"):
            swept = _sweep_until(stack, lambda: stack.run(run_id)[0] == "failed", scratch / "sweeper.log")
            _, phase, reason, _ = stack.run(run_id)
            assert swept
            assert phase == "writing"  # where it stopped
            assert reason.startswith("The worker running this import stopped (no sign of life since ")
            assert reason.endswith("; nothing was written. Start it again.")
            page = session.get(f"{base}/imports/{run_id}/", timeout=10).text
            assert "Import failed." in page
            assert "Start it again" in page

            again = _post(session, f"{base}/imports/{run_id}/", f"{base}/imports/{run_id}/restart/")
            assert again.headers["Location"] == f"/imports/{run_id}/"
            wait_for(lambda: stack.run(run_id)[0] == "succeeded", timeout=TIMEOUT, what="the new start")
        assert stack.run(run_id)[3] == 2  # the same run, started twice
    assert ("C-1", "Renamed One") in stack.customers()
    assert ("C-NEW", "Written only whole") in stack.customers()


def test_with_the_broker_down_the_upload_is_kept_and_starts_again_once_it_is_back(stack, scratch):
    with private_redis() as gone:
        pass  # started and killed: nothing answers on its port any more
    down = {**stack.env, "REDIS_URL": gone}
    upload = ("customers.csv", b"customer_id,name\nC-LATER,Imported once the queue is back\n", "text/csv")
    with web_server(down, scratch / "down.log") as base:
        answer = _post(_signed_in(base), f"{base}/imports/", files={"files": upload})
        run_id = _run_id(answer.headers["Location"])
    assert stack.run(run_id)[:3] == ("failed", "queued", NOT_QUEUED)
    with stack.worker(scratch / "worker.log"), web_server(stack.env, scratch / "web.log") as base:
        session = _signed_in(base)
        assert "could not be queued" in session.get(f"{base}/imports/{run_id}/", timeout=10).text
        _post(session, f"{base}/imports/{run_id}/", f"{base}/imports/{run_id}/restart/")
        wait_for(lambda: stack.run(run_id)[0] == "succeeded", timeout=TIMEOUT, what="the new start")
    assert ("C-LATER", "Imported once the queue is back") in stack.customers()


@pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("REQUIRE_BROWSER"), reason="needs Debian's chromium"
)
def test_the_run_page_shows_the_outcome_without_a_reload(stack, scratch, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    lock = _lock_key("import", stack.partner_id)
    upload = scratch / "customers.csv"
    upload.write_text("customer_id,name\nC-BROWSER,Seen in the browser\n")
    with (
        stack.worker(scratch / "worker.log"),
        web_server(stack.env, scratch / "web.log") as base,
        stack.db() as holder,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/customers/")
        holder.execute("SELECT pg_advisory_lock(%s)", (lock,))
        page.goto(f"{base}/imports/")
        page.set_input_files("input[type=file]", str(upload))
        page.click("form[enctype] button[type=submit]")
        page.wait_for_url(re.compile(r".*/imports/\d+/$"))
        page.wait_for_selector("text=Waiting for another import of this partner to end")
        shots = Path(os.environ.get("BROWSER_SCREENSHOTS") or scratch)
        page.screenshot(path=str(shots / "import-run-waiting.png"))
        loads = []
        page.on("load", lambda: loads.append(page.url))
        holder.execute("SELECT pg_advisory_unlock(%s)", (lock,))
        page.wait_for_selector("text=Import succeeded.", timeout=TIMEOUT * 1000)
        assert page.locator("#import-run table td", has_text="customers.csv").count() == 1
        assert page.locator("#import-run .badge").inner_text() == "Succeeded"
        assert loads == []  # the page was updated in place
        page.screenshot(path=str(shots / "import-run.png"))
        assert problems == []  # no script error, nothing refused by the CSP
        browser.close()


def _sweep_until(stack: Stack, done, log: Path) -> bool:
    """Sends the sweeper (once a second) until `done()`: the last heartbeat ages into staleness."""
    sent = [0.0]

    def swept() -> bool:
        if done():
            return True
        if time.monotonic() - sent[0] > 1:
            stack.probe.send_task("imports.sweep_stopped_runs")
            sent[0] = time.monotonic()
        return False

    return bool(wait_for(swept, timeout=TIMEOUT, what="the sweeper to fail the run", log=log))


def _api_token(session: requests.Session, base: str) -> str:
    """A fresh API token of the signed-in user, made as a person does on the tokens page."""
    page = _post(session, f"{base}/accounts/tokens/", data={"name": "worker test"})
    return re.search(r'<code class="token-secret">([^<]+)</code>', page.text).group(1)


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()
