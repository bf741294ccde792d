"""The nightly job and the web under faults, with real processes: a private PostgreSQL cluster and
a private redis-server (both started here, on free loopback ports), a real prefork Celery worker,
real beats and gunicorn, and the faults done to them: a worker child or the whole worker SIGKILLed
mid-recompute, two beats firing the same night, the database dropping the connection or going down
mid-run, Redis gone or hung while people use the site.

The worker is stopped at a known point without sleeping and without test hooks in the product:
the test holds, from its own connection, the lock the worker is about to need (a row of the day
being replaced, or the partner's advisory lock), sees the worker wait for it in `pg_stat_activity`,
and then does the damage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import os
import re
import signal
import socket
import time
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from celery import Celery
from celery.beat import PersistentScheduler
from django.conf import settings
from django.utils import timezone

from core.db import _lock_key
from imports.services import NOT_QUEUED
from metrics import engine
from metrics.tasks import RECOMPUTE_NOT_QUEUED
from partnerinsights.celery import app as celery_app
from tests.processes import (
    PrivatePostgres,
    celery_process,
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
        reason="fault tests run where PostgreSQL and Redis are (CI sets DATABASE_URL and REDIS_URL)",
    ),
    pytest.mark.skipif(bool(missing_binaries()), reason=f"private instances: {missing_binaries()}"),
]

YESTERDAY = timezone.localdate() - dt.timedelta(days=1)
DATABASE = "pi_faults"
EMAIL, PASSWORD = "admin@alpha.example", "correct-horse-battery-staple"  # a Global admin of the partner
TIMEOUT = 40  # seconds for any one thing to happen; a retry's backoff is at most 10 s, then 20 s


@dataclasses.dataclass
class Stack:
    """The private services, the partner's data imported into them and a worker consuming."""

    postgres: PrivatePostgres
    redis_url: str
    commands: dict[str, str]  # the environment of management commands
    worker_log: Path
    probe: Celery  # a client of the private broker: sends tasks, asks the worker what it runs
    partner_id: int

    def db(self, *, autocommit: bool = True) -> psycopg.Connection:
        return self.postgres.connect(DATABASE, autocommit=autocommit)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.db() as connection:
            return connection.execute(sql, params).fetchall()

    def ledger(self, as_of: dt.date) -> list[tuple]:
        """(status, attempts, error) of every ledger row of the partner at `as_of`."""
        return self.query(
            "SELECT status, attempts, error FROM metrics_recomputerun WHERE partner_id = %s AND as_of = %s",
            (self.partner_id, as_of),
        )

    def day(self, as_of: dt.date) -> dict[str, list[tuple]]:
        """Every snapshot row of the partner at `as_of`, without row ids: what readers see."""
        stored = {}
        with self.db() as connection:
            for table in engine.SNAPSHOT_TABLES:
                cursor = connection.execute(
                    f"SELECT * FROM {table} WHERE partner_id = %s AND as_of = %s", (self.partner_id, as_of)
                )
                columns = [column.name for column in cursor.description]
                rows = (
                    tuple(value for name, value in zip(columns, row, strict=True) if name != "id") for row in cursor
                )
                stored[table] = sorted(rows, key=repr)  # a canonical order; cells may be NULL
        return stored

    def publish(self, as_of: dt.date) -> None:
        """A clean run of one date by the worker, nothing in its way."""
        task_id = self.send_recompute(as_of)
        self.wait_for(lambda: f"recompute_dates[{task_id}] succeeded" in self.log(), f"a clean run of {as_of}")

    def sell_more(self) -> None:
        """Changes the data so that a recompute gives other numbers than the last one."""
        with self.db() as connection:
            connection.execute(
                "UPDATE customers_subscription SET quantity = quantity + 3 WHERE partner_id = %s", (self.partner_id,)
            )

    def hold_a_row_of(self, as_of: dt.date, holder: psycopg.Connection) -> None:
        """Locks one SKU row of the day in `holder`'s transaction: a recompute deletes the day
        grain by grain and waits there, the other grains deleted but not committed."""
        holder.execute(
            "SELECT id FROM metrics_skusnapshot WHERE partner_id = %s AND as_of = %s LIMIT 1 FOR UPDATE",
            (self.partner_id, as_of),
        )

    def send_recompute(self, as_of: dt.date) -> str:
        kwargs = {"partner_id": self.partner_id, "dates": [as_of.isoformat()], "trigger": "nightly"}
        return self.probe.send_task("metrics.recompute_dates", kwargs=kwargs).id

    def waiting(self, statement: str) -> list[int]:
        """The server processes waiting for a lock while running `statement…`."""
        rows = self.query(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s", (f"{statement}%",)
        )
        return [pid for (pid,) in rows]

    def log(self) -> str:
        return self.worker_log.read_text(errors="replace")

    def wait_for(self, condition, what: str) -> object:
        return wait_for(condition, timeout=TIMEOUT, what=what, log=self.worker_log)


@pytest.fixture(scope="module")
def stack() -> Stack:
    with private_folder() as folder, private_postgres(DATABASE) as postgres, private_redis() as redis_url:
        url = postgres.url(DATABASE)
        # Commands queue their follow-up recomputes in a Redis database no worker reads.
        commands = project_env(database_url=url, redis_url=redis_url[:-1] + "15", CELERY_QUEUE_DIR=str(folder))
        data = folder / "data"
        scale = ("--customers", "4", "--users", "40", "--days", "40")
        manage_all(commands, ("migrate", "-v", "0"), ("generate_demo_data", "--output", str(data), *scale))
        log = folder / "worker.log"
        worker_env = project_env(database_url=url, redis_url=redis_url, CELERY_QUEUE_DIR=str(folder))
        probe = Celery("faults-probe", broker=redis_url, set_as_current=False)
        probe.conf.update(task_routes=settings.CELERY_TASK_ROUTES, task_default_queue="default")
        with celery_worker(worker_env, log, pool="prefork", concurrency=2):  # starts while the data is imported
            manage(commands, "create_partner", "alpha", "--name", "Alpha")
            staff = ("--partner", "alpha", "--email", EMAIL, "--role", "global_admin", "--password", PASSWORD)
            manage_all(commands, ("import_data", "--partner", "alpha", str(data)), ("create_staff", *staff))
            with postgres.connect(DATABASE) as connection:
                (partner_id,) = connection.execute("SELECT id FROM accounts_partner WHERE slug = 'alpha'").fetchone()
            wait_for(lambda: " ready." in log.read_text(), timeout=60, what="the worker", log=log)
            yield Stack(postgres, redis_url, commands, log, probe, partner_id)
        probe.close()


@pytest.fixture
def scratch() -> Path:
    """A temporary folder of this test only (pytest's are shared with other sessions of the machine)."""
    with private_folder() as folder:
        yield folder


def _running_child(stack: Stack, task_id: str) -> int:
    """The pid of the pool process running `task_id`, as the worker itself reports it."""
    active = stack.probe.control.inspect(timeout=5).active() or {}
    pids = [task["worker_pid"] for tasks in active.values() for task in tasks if task["id"] == task_id]
    assert len(pids) == 1, active
    return pids[0]


def test_a_worker_killed_mid_recompute_is_redelivered_and_publishes_the_whole_day_once(stack):
    as_of = YESTERDAY - dt.timedelta(days=3)
    stack.publish(as_of)
    before = stack.day(as_of)
    stack.sell_more()
    with stack.db(autocommit=False) as holder:
        stack.hold_a_row_of(as_of, holder)
        task_id = stack.send_recompute(as_of)
        stack.wait_for(lambda: stack.waiting("DELETE FROM metrics_skusnapshot"), "the worker inside its transaction")
        assert stack.day(as_of) == before  # readers still see the whole previous day
        os.kill(_running_child(stack, task_id), signal.SIGKILL)
        stack.wait_for(lambda: "WorkerLostError" in stack.log(), "the worker to notice its child died")
        holder.rollback()
    stack.wait_for(lambda: stack.ledger(as_of) == [("succeeded", 2, "")], "the redelivered task to publish the day")
    after = stack.day(as_of)
    assert after != before
    stack.publish(as_of)
    assert stack.day(as_of) == after  # the same as a single clean run
    assert stack.ledger(as_of) == [("succeeded", 1, "")]


def test_a_whole_worker_killed_mid_recompute_leaves_its_task_for_redelivery_after_the_visibility_timeout(
    stack, scratch
):
    """The worker's main process dies too (the machine, the container): nobody rejects the task.
    Redis keeps it unacknowledged and gives it to another worker once `visibility_timeout` has passed."""
    as_of = YESTERDAY - dt.timedelta(days=9)
    stack.publish(as_of)
    before = stack.day(as_of)
    stack.sell_more()
    env = project_env(database_url=stack.postgres.url(DATABASE), redis_url=stack.redis_url)
    broker, queue = redis.Redis.from_url(stack.redis_url), "lost-node"
    kwargs = {"partner_id": stack.partner_id, "dates": [as_of.isoformat()], "trigger": "nightly"}
    with stack.db(autocommit=False) as holder:
        stack.hold_a_row_of(as_of, holder)
        with celery_worker(env, scratch / "lost.log", pool="prefork", queue=queue):
            task_id = stack.probe.send_task("metrics.recompute_dates", kwargs=kwargs, queue=queue).id
            stack.wait_for(
                lambda: stack.waiting("DELETE FROM metrics_skusnapshot"), "the worker inside its transaction"
            )
        # Leaving the block SIGKILLed the worker's whole process group: no reject, no restore.
        holder.rollback()
    unacked = {tag: payload for tag, payload in broker.hgetall("unacked").items() if task_id.encode() in payload}
    assert len(unacked) == 1
    assert broker.llen(queue) == 0
    assert stack.ledger(as_of) == [("running", 1, "")]  # its attempt counted, nothing published
    assert stack.day(as_of) == before
    # Three hours later, as far as Redis can tell: the message's reservation is older than the timeout.
    (tag,) = unacked
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    broker.zadd("unacked_index", {tag: time.time() - timeout - 60})
    with celery_worker(env, scratch / "next.log", queue=queue):
        wait_for(
            lambda: stack.ledger(as_of) == [("succeeded", 2, "")],
            timeout=TIMEOUT,
            what="another worker to redeliver the task",
            log=scratch / "next.log",
        )
    after = stack.day(as_of)
    assert after != before
    stack.publish(as_of)
    assert stack.day(as_of) == after


def _overdue_schedule(path: Path) -> None:
    """A beat schedule file whose nightly entry last ran two days ago, as after a missed night:
    a beat started with it sends the nightly task at once."""
    scheduler = PersistentScheduler(app=celery_app, schedule_filename=str(path))
    try:
        for name, entry in scheduler.schedule.items():
            entry.last_run_at = celery_app.now() - dt.timedelta(days=2 if name == "nightly-recompute" else 0)
        scheduler.sync()
    finally:
        scheduler.close()


def test_two_beats_firing_the_same_night_compute_it_once(stack, scratch):
    # Yesterday first, then the nights of the week the earlier tests left out (caught up).
    done = re.compile(rf"metrics\.recompute_dates\[[^]]+\] succeeded in [0-9.]+s: \['{YESTERDAY.isoformat()}'[],]")
    fanned_out = re.compile(r"metrics\.nightly_recompute\[[^]]+\] succeeded")
    with stack.db() as holder:
        # Both nightly fan-outs' recomputes start and wait for the partner's lock, held here.
        holder.execute("SELECT pg_advisory_lock(%s)", (_lock_key("metrics", stack.partner_id),))
        with contextlib.ExitStack() as beats:
            for number in (1, 2):
                folder = scratch / f"beat{number}"
                folder.mkdir()
                _overdue_schedule(folder / "schedule")
                log = folder / "beat.log"
                env = project_env(database_url=stack.postgres.url(DATABASE), redis_url=stack.redis_url)
                schedule = ("-s", str(folder / "schedule"), f"--pidfile={folder / 'beat.pid'}")
                beats.enter_context(celery_process(env, log, "beat", "--loglevel=info", *schedule))
            stack.wait_for(lambda: len(fanned_out.findall(stack.log())) == 2, "both beats' nightly jobs")
        stack.wait_for(lambda: len(stack.waiting("SELECT pg_advisory_xact_lock")) == 2, "two recomputes of one night")
        holder.execute("SELECT pg_advisory_unlock(%s)", (_lock_key("metrics", stack.partner_id),))
    stack.wait_for(lambda: len(done.findall(stack.log())) == 2, "both recomputes to end")
    assert stack.log().count(f"alpha {YESTERDAY} was recomputed by a concurrent run; skipped") == 1
    (run,) = stack.ledger(YESTERDAY)
    assert run[0] == "succeeded"
    computed = stack.day(YESTERDAY)
    assert computed[engine.SNAPSHOT_TABLES[-1]]  # the night has SKU rows
    stack.publish(YESTERDAY)
    assert stack.day(YESTERDAY) == computed


def test_a_dropped_database_connection_is_recorded_and_retried_with_backoff(stack):
    as_of = YESTERDAY - dt.timedelta(days=5)
    lock = _lock_key("metrics", stack.partner_id)
    with stack.db() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock,))
        task_id = stack.send_recompute(as_of)
        (backend,) = stack.wait_for(lambda: stack.waiting("SELECT pg_advisory_xact_lock"), "the worker to wait")
        holder.execute("SELECT pg_terminate_backend(%s)", (backend,))  # as a server restart or failover does
        retried = rf"recompute_dates\[{task_id}\] retry: Retry in \d+s: OperationalError\('terminating connection"
        stack.wait_for(lambda: re.search(retried, stack.log()), "the task to retry with backoff")
        # The retry waits for the lock in turn: the ledger shows its second attempt and the first one's error.
        stack.wait_for(lambda: stack.waiting("SELECT pg_advisory_xact_lock"), "the retry to wait")
        ((status, attempts, error),) = stack.ledger(as_of)
        assert (status, attempts) == ("running", 2)
        assert error.startswith("OperationalError: terminating connection due to administrator command")
        holder.execute("SELECT pg_advisory_unlock(%s)", (lock,))
    stack.wait_for(lambda: stack.ledger(as_of) == [("succeeded", 2, "")], "the retry to publish the day")


def test_the_database_down_mid_recompute_publishes_nothing_and_the_retry_completes_the_day(stack):
    as_of = YESTERDAY - dt.timedelta(days=7)
    stack.publish(as_of)
    before = stack.day(as_of)
    stack.sell_more()
    holder = stack.db(autocommit=False)
    stack.hold_a_row_of(as_of, holder)
    task_id = stack.send_recompute(as_of)
    stack.wait_for(lambda: stack.waiting("DELETE FROM metrics_skusnapshot"), "the worker inside its transaction")
    stack.postgres.stop("fast")  # every session ends, the worker's half-done transaction with it
    try:
        stack.wait_for(
            lambda: re.search(rf"recompute_dates\[{task_id}\] retry: Retry in \d+s: OperationalError", stack.log()),
            "the task to retry with backoff",
        )
    finally:
        holder.close()
        stack.postgres.start()
    seen = stack.day(as_of)
    stack.wait_for(lambda: [run[0] for run in stack.ledger(as_of)] == ["succeeded"], "the retry to finish")
    after = stack.day(as_of)
    assert seen in (before, after)  # never half a day
    assert after != before
    ((status, attempts, error),) = stack.ledger(as_of)
    assert (status, error) == ("succeeded", "")
    assert attempts >= 2  # the attempt the outage broke counts, and the retries that reached the database
    stack.publish(as_of)
    assert stack.day(as_of) == after


def _csrf_token(page: requests.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def _post(session: requests.Session, page: str, action: str = "", **fields) -> requests.Response:
    """A form of `page` posted to `action` (the page itself by default) as a browser does it:
    with the form's CSRF token and the page as referer."""
    token = _csrf_token(session.get(page, timeout=10))
    data = {"csrfmiddlewaretoken": token, **fields.pop("data", {})}
    return session.post(action or page, data=data, headers={"Referer": page}, timeout=30, **fields)


def test_with_redis_down_pages_logins_and_uploads_work_and_say_what_is_delayed(stack, scratch):
    as_of = YESTERDAY - dt.timedelta(days=1)
    stack.publish(as_of)
    (latest,) = stack.query("SELECT max(as_of) FROM metrics_familysnapshot WHERE partner_id = %s", (stack.partner_id,))[
        0
    ]
    (customer_id,) = stack.query("SELECT min(id) FROM customers_customer WHERE partner_id = %s", (stack.partner_id,))[0]
    with private_redis() as gone:
        pass  # started and killed: nothing answers on its port any more
    env = project_env(database_url=stack.postgres.url(DATABASE), redis_url=gone, MEDIA_ROOT=str(scratch / "media"))
    with web_server(env, scratch / "web.log") as base:
        session = requests.Session()
        login = _post(session, f"{base}/accounts/login/", data={"username": EMAIL, "password": PASSWORD})
        assert login.url == f"{base}/customers/"
        pages = [
            "/customers/",
            f"/customers/{customer_id}/insights/",
            f"/customers/{customer_id}/subscriptions/",
            f"/customers/{customer_id}/export.csv",
            "/analytics/",
            "/analytics/export.csv?grain=family",
            "/imports/",
            "/status/",
            "/settings/",
        ]
        for path in pages:
            page = session.get(f"{base}{path}", timeout=30)
            assert page.status_code == 200, path
        customers = session.get(f"{base}/customers/", timeout=30).text
        assert f"Metrics as of <strong>{latest:%Y-%m-%d}</strong>" in customers

        # An upload is stored and queued: with the queue down it is kept, and its run says so
        # (tests/test_import_worker.py starts it again once the queue is back).
        upload = ("customers.csv", b"customer_id,name\nC-REDIS-DOWN,Uploaded while Redis is down\n", "text/csv")
        started = time.monotonic()
        kept = _post(session, f"{base}/imports/", files={"files": upload})
        assert time.monotonic() - started < 10  # publishing gives up quickly: "Redis down" is not "web down"
        assert "Import failed." in kept.text
        assert html.escape(NOT_QUEUED) in kept.text
        assert "Start it again" in kept.text
        assert stack.query("SELECT name FROM customers_customer WHERE external_id = 'C-REDIS-DOWN'") == []
        # The command imports in its own process: the data is written, its recompute is delayed.
        folder = scratch / "import"
        folder.mkdir()
        (folder / "customers.csv").write_text("customer_id,name\nC-REDIS-DOWN,Imported while Redis is down\n")
        manage({**stack.commands, "REDIS_URL": gone}, "import_data", "--partner", "alpha", str(folder))
        assert stack.query("SELECT name FROM customers_customer WHERE external_id = 'C-REDIS-DOWN'") == [
            ("Imported while Redis is down",)
        ]
        status = session.get(f"{base}/status/", timeout=30).text
        assert "the recompute is delayed, it could not be queued (the task queue is unreachable)" in status
        recompute = _post(session, f"{base}/status/", f"{base}/status/recompute/")
        assert f"The recompute of {YESTERDAY:%Y-%m-%d} could not be queued" in recompute.text


def test_an_import_with_redis_not_answering_is_saved_within_the_publish_timeouts(stack, scratch):
    """A broker that accepts connections and never answers (a hung Redis, a black-holed route):
    queueing gives up after the publish timeouts instead of hanging the import."""
    folder = scratch / "import"
    folder.mkdir()
    (folder / "customers.csv").write_text("customer_id,name\nC-REDIS-HUNG,Imported while Redis hangs\n")
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # the kernel accepts connections; nobody ever reads or answers
        env = {**stack.commands, "REDIS_URL": f"redis://127.0.0.1:{hung.getsockname()[1]}/0"}
        started = time.monotonic()
        manage(env, "import_data", "--partner", "alpha", str(folder))
        elapsed = time.monotonic() - started
    assert elapsed < 15
    ((warnings,),) = stack.query("SELECT warnings FROM customers_importrun ORDER BY id DESC LIMIT 1")
    assert RECOMPUTE_NOT_QUEUED in warnings
    assert stack.query("SELECT name FROM customers_customer WHERE external_id = 'C-REDIS-HUNG'") == [
        ("Imported while Redis hangs",)
    ]
