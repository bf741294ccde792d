"""The nightly job: runs, the ledger, locks, retries, Celery wiring, a real worker on Redis."""

from __future__ import annotations

import datetime as dt
import io
import os
import runpy
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import InterfaceError, OperationalError, connection, connections
from django.utils import timezone
from django_scopes import scope

from imports.models import ImportRun
from imports.pipeline.sources import source_from_path
from imports.services import data_import
from metrics import engine, services, tasks
from metrics.models import RecomputeRun, SkuSnapshot
from metrics.tasks import RECOMPUTE_NOT_QUEUED
from partnerinsights.celery import app as celery_app
from tests import factories
from tests.metrics_reference import stored_metrics
from tests.processes import celery_worker, private_folder, project_env, wait_for
from tests.test_metrics import World

ROOT = Path(__file__).resolve().parent.parent
YESTERDAY = timezone.localdate() - dt.timedelta(days=1)


@pytest.fixture
def world(partner):
    world = World(partner)
    world.licensed(world.sub())
    return world


class TestCommand:
    def test_default_is_yesterday_for_every_partner(self, partner, other_partner):
        err = io.StringIO()
        call_command("recompute_metrics", stderr=err)
        assert sorted(RecomputeRun.objects.values_list("partner__slug", "as_of", "status")) == [
            ("alpha", YESTERDAY, "succeeded"),
            ("bravo", YESTERDAY, "succeeded"),
        ]
        assert f"alpha {YESTERDAY}: succeeded" in err.getvalue()

    def test_backfill_includes_both_ends(self, partner):
        call_command(
            "recompute_metrics",
            "--partner",
            "alpha",
            "--from",
            "2024-02-27",
            "--to",
            "2024-03-02",
            stderr=io.StringIO(),
        )
        assert sorted(RecomputeRun.objects.values_list("as_of", flat=True)) == [
            dt.date(2024, 2, 27),
            dt.date(2024, 2, 28),
            dt.date(2024, 2, 29),
            dt.date(2024, 3, 1),
            dt.date(2024, 3, 2),
        ]

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--as-of", "2024-13-01"], "not a date"),
            (["--from", "2024-01-02"], "--from and --to go together"),
            (["--from", "2024-01-02", "--to", "2024-01-01"], "is before --from"),
            (["--as-of", "2024-01-01", "--from", "2024-01-01", "--to", "2024-01-02"], "either --as-of"),
            (["--partner", "nobody"], "No partner with slug 'nobody'"),
        ],
    )
    def test_bad_arguments_are_errors(self, partner, args, message):
        with pytest.raises(CommandError, match=message):
            call_command("recompute_metrics", *args)


class TestLedger:
    def test_a_failure_is_recorded_and_retried_until_it_gives_up(self, world, partner, monkeypatch):
        def broken(**kwargs):
            raise OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(engine, "compute_date", broken)
        for attempt in range(1, services.MAX_ATTEMPTS + 1):
            with pytest.raises(OperationalError):
                services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")
            run = RecomputeRun.objects.get()
            assert (run.status, run.attempts) == ("failed", attempt)
            assert run.error == "OperationalError: server closed the connection unexpectedly"
        with pytest.raises(services.GaveUp):
            services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")

    def test_a_success_after_failures_publishes_and_resets_attempts(self, world, partner, monkeypatch):
        original = engine.compute_date
        monkeypatch.setattr(engine, "compute_date", lambda **kw: (_ for _ in ()).throw(OperationalError("down")))
        with pytest.raises(OperationalError):
            services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")
        assert not SkuSnapshot.objects.exists()  # a failed run publishes nothing
        monkeypatch.setattr(engine, "compute_date", original)
        run = services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")
        assert (run.status, run.error, run.published_at is not None) == ("succeeded", "", True)
        assert SkuSnapshot.objects.count() == 1
        again = services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")
        assert again.attempts == 1


class TestTasks:
    def test_nightly_fans_out_one_task_per_partner(self, partner, other_partner):
        assert tasks.nightly_recompute.delay().get() == 2
        assert sorted(RecomputeRun.objects.values_list("partner__slug", "as_of", "trigger")) == [
            ("alpha", YESTERDAY, "nightly"),
            ("bravo", YESTERDAY, "nightly"),
        ]

    def test_a_poison_date_is_retried_by_the_task_then_given_up_and_shown_failed(self, world, partner, monkeypatch):
        calls = []

        def poison(**kwargs):
            calls.append(kwargs)
            raise OperationalError("canceling statement due to statement timeout")

        monkeypatch.setattr(engine, "compute_date", poison)
        # Eagerly, each retry the task asks for runs at once (as a worker would after its backoff).
        monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)
        kwargs = {"partner_id": partner.pk, "dates": [YESTERDAY.isoformat()], "trigger": "nightly"}
        result = tasks.recompute_dates.apply(kwargs=kwargs)
        assert (result.state, result.get()) == ("SUCCESS", [])  # given up: no exception, no further retry
        assert len(calls) == services.MAX_ATTEMPTS
        run = RecomputeRun.objects.get()
        assert (run.status, run.attempts) == ("failed", services.MAX_ATTEMPTS)
        assert run.error.startswith(f"Gave up after {services.MAX_ATTEMPTS} attempts")
        assert run.error.endswith("Last error: OperationalError: canceling statement due to statement timeout")

    def test_a_date_whose_worker_is_lost_every_time_is_given_up(self, world, partner):
        RecomputeRun.objects.create(
            partner=partner, as_of=YESTERDAY, trigger="nightly", status="running", attempts=services.MAX_ATTEMPTS
        )  # five deliveries that each killed their worker (out of memory) before recording anything
        with pytest.raises(services.GaveUp):
            services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")
        run = RecomputeRun.objects.get()
        assert (run.status, run.attempts) == ("failed", services.MAX_ATTEMPTS)
        assert run.error.endswith("Last error: none recorded, the worker running it was lost")
        assert not SkuSnapshot.objects.exists()

    @pytest.mark.parametrize("trigger", sorted(services.PERSON_TRIGGERS))
    def test_a_person_can_recompute_a_date_that_gave_up(self, world, partner, trigger):
        RecomputeRun.objects.create(
            partner=partner, as_of=YESTERDAY, trigger="nightly", status="failed", attempts=services.MAX_ATTEMPTS
        )
        run = services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger=trigger)
        assert (run.status, run.attempts, run.error) == ("succeeded", 1, "")
        assert SkuSnapshot.objects.count() == 1

    def test_the_nightly_run_catches_up_the_nights_of_the_week_that_did_not_succeed(self, world, partner):
        def night(days_ago: int, status: str, attempts: int = 1) -> None:
            published = timezone.now() if status == "succeeded" else None
            as_of = YESTERDAY - dt.timedelta(days=days_ago)
            RecomputeRun.objects.create(
                partner=partner,
                as_of=as_of,
                trigger="nightly",
                status=status,
                attempts=attempts,
                published_at=published,
            )

        night(9, "succeeded")  # the partner's first published night
        night(6, "failed", attempts=2)  # its retries ran out while the database was down
        night(5, "failed", attempts=services.MAX_ATTEMPTS)  # gave up: waits for a person
        night(4, "succeeded")
        # 3 days ago: no row, the broker was down when beat fired
        night(2, "running")  # its worker was lost and the message with it
        night(1, "succeeded")
        with scope(partner=partner):
            assert services.nightly_dates(partner=partner) == [YESTERDAY - dt.timedelta(days=n) for n in (0, 2, 3, 6)]
        tasks.nightly_recompute.delay()
        outcomes = dict(RecomputeRun.objects.values_list("as_of", "status"))
        assert [n for n in range(10) if outcomes.get(YESTERDAY - dt.timedelta(days=n)) != "succeeded"] == [5, 7, 8]

    def test_the_nightly_run_of_a_partner_without_metrics_does_only_yesterday(self, partner):
        with scope(partner=partner):
            assert services.nightly_dates(partner=partner) == [YESTERDAY]

    def test_the_beat_schedule_runs_nightly_at_two(self):
        entry = settings.CELERY_BEAT_SCHEDULE["nightly-recompute"]
        assert entry["task"] == "metrics.nightly_recompute"
        assert (entry["schedule"].hour, entry["schedule"].minute) == ({2}, {0})

    def test_recompute_task_is_configured_for_redelivery_and_retries(self, monkeypatch):
        task = celery_app.tasks["metrics.recompute_dates"]
        assert (task.acks_late, task.reject_on_worker_lost) == (True, True)
        assert {OperationalError, InterfaceError} <= set(task.autoretry_for)
        assert (task.retry_backoff, task.retry_jitter) == (10, True)
        # The ledger decides when a failing date is poison; Celery's own retries must not run out first.
        assert task.max_retries >= services.MAX_ATTEMPTS
        assert task.soft_time_limit < task.time_limit
        # The settings as production reads them, with Redis as the broker.
        monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
        monkeypatch.delenv("CELERY_TASK_ALWAYS_EAGER", raising=False)
        production = runpy.run_path(str(ROOT / "partnerinsights" / "settings.py"))
        options = production["CELERY_BROKER_TRANSPORT_OPTIONS"]
        # Redis redelivers a message not acknowledged within visibility_timeout, also while it runs:
        # a retry waits up to retry_backoff_max with its message reserved, then runs up to time_limit.
        assert options["visibility_timeout"] > task.time_limit + task.retry_backoff_max
        assert production["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 1  # long tasks: one reserved at a time
        # Publishing gives up within seconds when Redis is down or hung ("Redis down" is not "web down").
        assert (options["socket_connect_timeout"], options["socket_timeout"], options["max_retries"]) == (2, 5, 2)
        policy = production["CELERY_TASK_PUBLISH_RETRY_POLICY"]
        assert policy["max_retries"] <= 2
        assert policy["interval_max"] <= 1
        assert production["CELERY_TASK_ALWAYS_EAGER"] is False

    def test_a_successful_import_recomputes_the_dates_it_touched(
        self, partner, tmp_path, django_capture_on_commit_callbacks
    ):
        published = [dt.date(2024, 3, 1), dt.date(2024, 4, 1), dt.date(2024, 6, 1), dt.date(2024, 9, 6)]
        services.metrics_recompute_dates(partner=partner, dates=published, trigger="nightly")
        folder = tmp_path / "in"
        folder.mkdir()
        (folder / "customers.csv").write_text("customer_id,name\nC1,Contoso\n")
        (folder / "users.csv").write_text("user_id,customer_id,upn\nU1,C1,u@x\n")
        (folder / "activity.csv").write_text("user_id,workload,date\nU1,teams,2024-03-10\n")
        with django_capture_on_commit_callbacks(execute=True):
            run = data_import(partner=partner, source=source_from_path(folder), origin=ImportRun.Origin.COMMAND)
        assert run.status == "succeeded"
        recomputed = RecomputeRun.objects.filter(trigger="import").values_list("as_of", flat=True)
        # 04-01's window (03-05 … 04-01) holds 03-10; 06-01's inactive users look back 180 days
        # (12-05-2023 … 06-01) and so does it; 03-01 is before it and 09-06's lookback starts 03-11.
        assert sorted(recomputed) == [dt.date(2024, 4, 1), dt.date(2024, 6, 1), YESTERDAY]

    def test_a_broker_that_is_down_never_fails_an_import(
        self, partner, tmp_path, monkeypatch, django_capture_on_commit_callbacks
    ):
        def unreachable(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

        monkeypatch.setattr(tasks.recompute_dates, "delay", unreachable)
        folder = tmp_path / "in"
        folder.mkdir()
        (folder / "customers.csv").write_text("customer_id,name\nC1,Contoso\n")
        with django_capture_on_commit_callbacks(execute=True):
            run = data_import(partner=partner, source=source_from_path(folder), origin=ImportRun.Origin.COMMAND)
        assert run.status == "succeeded"
        assert not RecomputeRun.objects.exists()
        run.refresh_from_db()
        assert run.warnings == [RECOMPUTE_NOT_QUEUED]  # the import's page says the metrics are delayed


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="advisory locks and real concurrency: PostgreSQL",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_runs_compute_once_and_agree(partner):
    for _ in range(30):
        world = World(partner)  # a customer each
        world.licensed(world.sub())
    outcomes, errors = [], []

    def run() -> None:
        try:
            with scope(partner=partner):  # threads start without the test's context
                outcomes.append(services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly"))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert RecomputeRun.objects.filter(partner=partner).count() == 1
    assert SkuSnapshot.objects.filter(as_of=YESTERDAY).count() == 30
    single = stored_metrics(partner, YESTERDAY)
    services.metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")
    assert stored_metrics(partner, YESTERDAY) == single


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the real Redis (CI sets REDIS_URL)")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_on_redis_completes_a_recompute(partner):
    factories.SubscriptionFactory(customer=factories.CustomerFactory(partner=partner))
    queue = f"test-{os.getpid()}-{time.monotonic_ns()}"
    database = connection.settings_dict
    env = project_env(
        database_url=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        if connection.vendor == "postgresql"
        else f"sqlite:///{database['NAME']}",
        redis_url=os.environ["REDIS_URL"],
    )
    celery_app.conf.task_always_eager = False
    try:
        with private_folder() as folder, celery_worker(env, folder / "worker.log", queue=queue) as worker:
            tasks.recompute_dates.apply_async(
                kwargs={"partner_id": partner.pk, "dates": [YESTERDAY.isoformat()], "trigger": "nightly"}, queue=queue
            )
            done = RecomputeRun.objects.filter(partner=partner, status="succeeded", trigger="nightly")
            wait_for(done.exists, timeout=60, what="the worker's recompute", log=folder / "worker.log")
            assert worker.poll() is None
        assert SkuSnapshot.objects.filter(partner=partner, as_of=YESTERDAY).count() == 1
    finally:
        celery_app.conf.task_always_eager = True
