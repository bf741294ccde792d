"""The nightly collection end to end (SPEC §9), against the HTTPS replay server of the vendor's APIs
(tests/vendor_replay.py): a real MSAL login, paged customer lists and SKUs, 302 report downloads on
another origin, throttling, expired tokens and every kind of customer failure. What a pull imports
must equal what an upload of the same answers imports, number for number."""

from __future__ import annotations

import datetime as dt
import html
import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.models import Partner
from accounts.roles import Role
from collection import encryption, services, tasks
from collection.models import CustomerSync, PullRun, PullStatus, PullTrigger, VendorConnection
from collection.vendor import Credentials, Endpoints, ErrorKind, Rate, VendorClient, VendorError
from customers.models import Activity, Customer, EndUser, LicenseAssignment, Subscription
from imports.models import ImportOrigin, ImportRun
from imports.pipeline.sources import source_from_path
from imports.services import data_import
from metrics.models import (
    FamilySnapshot,
    InactiveSnapshot,
    PortfolioSnapshot,
    RecomputeRun,
    SkuSnapshot,
    Trigger,
    WorkloadSnapshot,
)
from metrics.services import metrics_recompute, yesterday
from partnerinsights.celery import app as celery_app
from tests import factories
from tests.conftest import CONNECTION_KEY, client_for, token_client_for
from tests.processes import ROOT, celery_worker, manage, private_folder, project_env, wait_for
from tests.test_vendor_import import tables
from tests.vendor_replay import VendorReplay, World, make_world

YESTERDAY = services.yesterday_utc()
MANAGE = (sys.executable, "manage.py")
SNAPSHOTS = (SkuSnapshot, WorkloadSnapshot, FamilySnapshot, PortfolioSnapshot, InactiveSnapshot)


@pytest.fixture
def vendor(settings, partner) -> Iterator[Callable[..., VendorReplay]]:
    """Starts the replay server of a world and points the partner's connection (or another
    partner's) and the settings at it; the report pace is the world's (the server enforces it too)."""
    servers: list[VendorReplay] = []

    def start(world: World, *, of: Partner = partner) -> VendorReplay:
        replay = VendorReplay(world).__enter__()
        servers.append(replay)
        settings.VENDOR_LOGIN_URL = replay.login_url
        settings.VENDOR_PARTNER_CENTER_URL = replay.partner_center_url
        settings.VENDOR_GRAPH_URL = replay.graph_url
        settings.VENDOR_CA_BUNDLE = replay.ca_path
        settings.VENDOR_REPORT_RATE = "{}/{}".format(*world.report_rate)
        settings.VENDOR_RETRY_BUDGET = 3
        settings.VENDOR_PULL_CONCURRENCY = 4
        VendorConnection.objects.update_or_create(
            partner=of,
            defaults={
                "tenant_id": world.partner_tenant,
                "client_id": world.client_id,
                "encrypted_secret": encryption.encrypt(world.secret),
            },
        )
        return replay

    yield start
    for replay in servers:
        replay.__exit__(None, None, None)


def fast_world(**options) -> World:
    world = make_world(last_day=YESTERDAY, **options)
    world.report_rate = (1000, 1.0)
    return world


@contextmanager
def committed(django_capture_on_commit_callbacks):
    """Runs what the pull queues on commit (the recompute), as a worker would."""
    with django_capture_on_commit_callbacks(execute=True):
        yield


def pull(partner, customer: str = "") -> tuple[str, str]:
    """`pull_vendor_data` as an operator runs it: (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    arguments = ["--partner", partner.slug] + (["--customer", customer] if customer else [])
    call_command("pull_vendor_data", *arguments, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def metric_rows(partner) -> dict[str, list[tuple]]:
    """Every snapshot row of a partner, without ids: customers by their tenant id, products by SKU."""
    customers = dict(Customer.objects.filter(partner=partner).values_list("pk", "external_id"))
    result = {}
    for model in SNAPSHOTS:
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in ("id", "partner_id")]
        rows = []
        for row in model.objects.filter(partner=partner).select_related("product").values(*fields):
            if "customer_id" in row:
                row["customer_id"] = customers.get(row["customer_id"])
            rows.append(tuple(sorted((key, str(value)) for key, value in row.items())))
        result[model.__name__] = sorted(rows)
    return result


# --- a pull equals an upload of the same answers -----------------------------------------------


def test_a_first_pull_fills_the_window_and_equals_an_upload_of_the_same_answers(
    vendor, partner, other_partner, tmp_path, django_capture_on_commit_callbacks
):
    world = fast_world(customers=5, users=8, seed=7)
    replay = vendor(world)
    with committed(django_capture_on_commit_callbacks):
        said = pull(partner)
    api_calls = [seen for seen in replay.requests if "/oauth2/" not in seen.path and "openid" not in seen.path]
    assert said == ("", f"alpha: pulled 5 of 5 customers; {len(api_calls)} requests, 0 retried, 0 throttled.\n")
    run = PullRun.objects.get(partner=partner)
    assert (run.status, run.customers_total, run.customers_done, run.customers_failed) == ("succeeded", 5, 5, 0)
    window = services.days_to_pull(None, until=YESTERDAY)
    for sync in CustomerSync.objects.filter(partner=partner):
        assert (sync.error, sync.last_report_day, sync.failures) == ("", YESTERDAY, 0)
        assert sync.imported["report_days"] == [day.isoformat() for day in window]
        assert sync.customer is not None
        assert sync.customer.external_id == sync.tenant_id
    assert ImportRun.objects.filter(partner=partner, origin=ImportOrigin.COLLECTION, status="succeeded").count() == 5
    # what was asked: 3 pages of customers (2 a page), every SKU page, 28 reports per customer
    assert replay.count("/v1/customers", tenant=None) >= 3
    assert all(replay.count("getOffice365ActiveUserDetail", tenant=t.tenant_id) == 28 for t in world.tenants)
    assert not [seen for seen in replay.requests if seen.path.startswith("/reports/") and seen.had_authorization]

    # the same answers uploaded as files by another partner give the same rows and numbers
    world.export(tmp_path / "upload", window)
    uploaded = data_import(
        partner=other_partner, source=source_from_path(tmp_path / "upload"), origin=ImportOrigin.UPLOAD
    )
    assert uploaded.status == "succeeded", uploaded.errors
    assert tables(partner) == tables(other_partner)
    computed = RecomputeRun.objects.filter(partner=partner, status="succeeded").values_list("as_of", flat=True)
    assert list(computed) == [yesterday()]  # queued by the pull, run by the (eager) worker
    metrics_recompute(partner=other_partner, as_of=yesterday(), trigger=Trigger.IMPORT)
    pulled_metrics, uploaded_metrics = metric_rows(partner), metric_rows(other_partner)
    assert pulled_metrics["SkuSnapshot"], "the pull's recompute ran"
    assert pulled_metrics == uploaded_metrics


def test_the_next_night_asks_only_for_the_days_since_and_adds_them(vendor, partner, django_capture_on_commit_callbacks):
    world = fast_world(customers=2, users=6, seed=3)
    world.last_day = YESTERDAY - dt.timedelta(days=1)  # the report API has no data for yesterday yet
    replay = vendor(world)
    pull(partner)
    first = {sync.tenant_id: sync for sync in CustomerSync.objects.filter(partner=partner)}
    assert {sync.last_report_day for sync in first.values()} == {YESTERDAY - dt.timedelta(days=1)}
    assert {len(sync.imported["report_days"]) for sync in first.values()} == {27}
    # yesterday was asked for, answered "no data yet", and nothing after it was asked
    assert all(replay.count("getOffice365ActiveUserDetail", tenant=t.tenant_id) == 28 for t in world.tenants)
    activity_before = Activity.objects.filter(partner=partner).count()

    world.last_day = YESTERDAY  # the next night: yesterday's report is there
    before = len(replay.requests)
    with committed(django_capture_on_commit_callbacks):
        pull(partner)
    asked = [seen.path for seen in replay.requests[before:] if "getOffice365ActiveUserDetail" in seen.path]
    assert sorted(asked) == sorted(
        f"/graph/v1.0/reports/getOffice365ActiveUserDetail(date={YESTERDAY.isoformat()})" for _ in world.tenants
    )
    for sync in CustomerSync.objects.filter(partner=partner):
        assert sync.last_report_day == YESTERDAY
        assert sync.imported["report_days"] == [YESTERDAY.isoformat()]
    latest = Activity.objects.filter(partner=partner, activity_date=YESTERDAY)
    assert latest.exists()  # someone was active yesterday in this world
    assert Activity.objects.filter(partner=partner).count() == activity_before + latest.count()


# --- one customer's failure is its own ---------------------------------------------------------

FAULTY = {  # customer index -> fault, and how its Sync line must read
    1: ("consent_revoked", ErrorKind.CONSENT_REVOKED, "has not consented to the app, or revoked it (AADSTS700016"),
    2: ("tenant_gone", ErrorKind.TENANT_GONE, "the customer's tenant is gone or no longer the partner's customer"),
    3: ("permission_missing", ErrorKind.PERMISSION_MISSING, "the app needs the application permission Organization"),
    5: ("throttled_forever", ErrorKind.THROTTLED, "kept being throttled by the vendor (6 times)"),
    8: ("malformed_json", ErrorKind.MALFORMED, "came back as something that is not valid JSON"),
    9: ("truncated_csv", ErrorKind.MALFORMED, "cells on line"),
    10: ("drop_connection", ErrorKind.UNAVAILABLE, "the download broke off after"),
}
RECOVERED = {4: "throttled_once", 6: "server_error_once", 7: "expired_token_once"}
EMPTY = 11  # a tenant with no subscriptions, no SKUs and no users, from the start


def customer_rows(partner, tenant: str) -> dict[str, list[tuple]]:
    """One customer's stored data, to show a failed pull left it as it was."""
    of = {"partner": partner, "customer__external_id": tenant}
    of_user = {"partner": partner, "user__customer__external_id": tenant}
    return {
        "subscriptions": sorted(Subscription.objects.filter(**of).values_list("external_id", "quantity", "status")),
        "users": sorted(EndUser.objects.filter(**of).values_list("external_id", "display_name")),
        "assignments": sorted(
            LicenseAssignment.objects.filter(**of_user).values_list(
                "user__external_id", "subscription__external_id", "assigned_on", "removed_on"
            )
        ),
        "activity": sorted(
            Activity.objects.filter(**of_user).values_list("user__external_id", "workload", "activity_date")
        ),
    }


def test_each_customer_fails_alone_in_plain_words_and_keeps_its_stored_data(
    vendor, partner, staff, django_capture_on_commit_callbacks, caplog
):
    world = fast_world(customers=13, users=5, seed=11, concealed={12})
    world.last_day = YESTERDAY - dt.timedelta(days=2)
    world.faults[world.tenants[EMPTY].tenant_id] = {"empty"}
    replay = vendor(world)
    pull(partner)
    assert PullRun.objects.get(partner=partner).status == PullStatus.SUCCEEDED
    tenants = [tenant.tenant_id for tenant in world.tenants]
    before = {tenant: customer_rows(partner, tenant) for tenant in tenants}

    # the next night: yesterday's reports, one more seat everywhere, and a fault for most customers
    world.last_day = YESTERDAY
    for tenant in world.tenants:
        for subscription in tenant.subscriptions:
            subscription["quantity"] += 1
    for index, (fault, _, _) in FAULTY.items():
        world.faults[tenants[index]] = {fault}
    for index, fault in RECOVERED.items():
        world.faults[tenants[index]] = {fault}
    with committed(django_capture_on_commit_callbacks), caplog.at_level(logging.DEBUG):
        out, err = pull(partner)

    run = PullRun.objects.filter(partner=partner).first()
    assert (run.status, run.customers_done, run.customers_failed) == (PullStatus.PARTIAL, 13, len(FAULTY))
    assert run.throttled >= 1 + 5
    assert run.retries >= 1
    assert f"pulled {13 - len(FAULTY)} of 13 customers, {len(FAULTY)} failed" in err
    syncs = {sync.tenant_id: sync for sync in CustomerSync.objects.filter(partner=partner)}
    for index, (fault, kind, words) in FAULTY.items():
        tenant = tenants[index]
        sync = syncs[tenant]
        assert (sync.error_kind, sync.failures, sync.last_report_day) == (kind, 1, world.last_day - dt.timedelta(2)), (
            fault
        )
        assert words in sync.error, (fault, sync.error)
        assert f"{tenant} ({sync.name}): {sync.get_error_kind_display()}: {sync.error}" in err, fault
        assert customer_rows(partner, tenant) == before[tenant], f"{fault} changed stored data"
    for index in [0, 12, *RECOVERED]:
        tenant = tenants[index]
        sync = syncs[tenant]
        assert (sync.error, sync.last_report_day) == ("", YESTERDAY), RECOVERED.get(index)
        rows = customer_rows(partner, tenant)
        assert rows != before[tenant]
        bought = {external_id: quantity for external_id, quantity, _ in before[tenant]["subscriptions"]}
        assert all(q == bought[e] + 1 for e, q, _ in rows["subscriptions"] if e in bought and ":" not in e)
    assert syncs[tenants[12]].concealed_names
    assert not syncs[tenants[0]].concealed_names
    empty = syncs[tenants[EMPTY]]
    assert (empty.error, empty.last_report_day, empty.customer.name) == ("", None, world.tenants[EMPTY].name)
    assert (empty.imported["subscriptions"], empty.imported["skus"], empty.imported["report_days"]) == (0, 0, [])
    # the token never reached the download host, and the secret is in no log line
    assert not [seen for seen in replay.requests if seen.path.startswith("/reports/") and seen.had_authorization]
    assert world.secret not in caplog.text + out + err
    said = caplog.text + out + err + " ".join(sync.error for sync in syncs.values())
    assert replay._tokens  # tokens were issued, and none of them was ever written down
    assert not [token for token in replay._tokens if token in said]

    # the Sync page and the API tell the same, failing customers first
    page = client_for(staff[Role.ADMIN_AGENT]).get("/sync/").content.decode()
    assert f"{len(FAULTY)} failing" in page
    assert "Consent revoked or never given" in page
    assert "Tenant gone" in page
    assert "1 customer conceals user names in reports" in page
    api = token_client_for(staff[Role.ADMIN_AGENT]).get("/api/sync/customers/?failing=true").json()
    assert sorted(row["tenant_id"] for row in api["results"]) == sorted(tenants[i] for i in FAULTY)
    assert {row["error_kind"] for row in api["results"]} == {kind.value for _, kind, _ in FAULTY.values()}


# --- the partner's own failures end the pull with one message ---------------------------------


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("wrong secret", "The login service refused the app's credentials (AADSTS7000215: Invalid client secret"),
        (
            "wrong client id",
            "The login service refused the app's credentials (AADSTS700016: Application with identifier",
        ),
        ("customers_unavailable", "Could not get the customer list: the partner portal answered 503"),
    ],
)
def test_when_the_partner_cannot_be_pulled_the_command_says_why_once_and_exits_1(
    vendor, partner, staff, breakage, message
):
    world = fast_world(customers=3)
    vendor(world)
    connection = VendorConnection.objects.get(partner=partner)
    if breakage == "wrong secret":
        connection.encrypted_secret = encryption.encrypt("not-the-secret")
    elif breakage == "wrong client id":
        connection.client_id = "00000000-0000-4000-8000-000000000000"
    else:
        world.faults[world.partner_tenant] = {breakage}
    connection.save()
    with pytest.raises(CommandError) as refused:
        pull(partner)
    assert refused.value.returncode == 1  # the command's exit status
    kind = "Service unavailable" if breakage == "customers_unavailable" else "Credentials refused"
    assert str(refused.value).startswith(f"Nothing could be pulled: {kind}: {message}")
    assert "\n" not in str(refused.value)  # one line, not one per customer
    run = PullRun.objects.get(partner=partner)
    assert (run.status, run.customers_total) == (PullStatus.FAILED, 0)
    assert not CustomerSync.objects.exists()
    page = client_for(staff[Role.ADMIN_AGENT]).get("/sync/").content.decode()
    assert message.replace("'", "&#x27;") in page


def test_one_customer_is_pulled_alone(vendor, partner):
    world = fast_world(customers=3)
    replay = vendor(world)
    only = world.tenants[1].tenant_id
    _, err = pull(partner, customer=only)
    assert "pulled 1 of 1 customers" in err
    assert list(CustomerSync.objects.values_list("tenant_id", flat=True)) == [only]
    assert list(Customer.objects.filter(partner=partner).values_list("external_id", flat=True)) == [only]
    assert {seen.tenant for seen in replay.requests if seen.path.startswith("/graph/")} == {only}
    with pytest.raises(CommandError, match="is not among the partner portal's customers"):
        pull(partner, customer="99999999-9999-4999-8999-999999999999")


# --- the connection test -------------------------------------------------------------------------


def test_the_connection_test_says_what_works_and_names_a_missing_role(vendor, partner, staff):
    world = fast_world(customers=3)
    vendor(world)
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    page = admin.post("/settings/connection/test/", follow=True).content.decode()
    assert "The connection works." in page
    assert "The partner portal accepted the app&#x27;s credentials." in page
    assert "The partner portal listed 2 customers on its first page." in page  # a person waits: one page
    sample = world.tenants[0]
    assert f"The directory of customer {sample.tenant_id} answered: {len(sample.skus)} SKUs." in page

    world.faults[sample.tenant_id] = {"permission_missing"}
    page = html.unescape(admin.post("/settings/connection/test/", follow=True).content.decode())
    assert "The connection does not work yet" in page
    assert "The partner portal listed 2 customers on its first page." in page
    assert (
        f"The directory refused the app the subscribed SKUs of customer {sample.tenant_id} (403: "
        "Authorization_RequestDenied: Insufficient privileges to complete the operation.): the app needs the "
        "application permission Organization.Read.All consented in this customer's tenant (a person would need the "
        "delegated role Directory Readers or Global Reader)"
    ) in page


# --- pace, memory and statements at scale ---------------------------------------------------------


def test_report_calls_are_paced_per_tenant_so_the_vendor_never_throttles(vendor, partner, settings):
    world = fast_world(customers=2, users=3)
    world.report_rate = (4, 1.0)  # the server refuses a fifth call within a second with 429
    replay = vendor(world)
    pull(partner)
    run = PullRun.objects.get(partner=partner)
    assert (run.status, run.throttled) == (PullStatus.SUCCEEDED, 0)
    for tenant in world.tenants:
        times = [seen.at for seen in replay.requests if "getOffice365" in seen.path and seen.tenant == tenant.tenant_id]
        assert len(times) == 28
        assert all(later - earlier >= 0.99 for earlier, later in zip(times, times[4:], strict=False))


def statements_of_a_pull(vendor, customers: int, users: int) -> int:
    """SQL statements of a pull of one day for `customers` customers of a new partner."""
    partner = factories.PartnerFactory(slug=f"measured-{customers}-{users}")
    world = fast_world(customers=customers, users=users, seed=customers)
    vendor(world, of=partner)
    already = YESTERDAY - dt.timedelta(days=1)  # each has its window: tonight brings yesterday only
    CustomerSync.objects.bulk_create(
        CustomerSync(partner=partner, tenant_id=tenant.tenant_id, last_report_day=already) for tenant in world.tenants
    )
    statements = []  # counted, not logged

    def count(execute, sql, params, many, context):
        statements.append(1)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        pull(partner)
    assert not CustomerSync.objects.filter(partner=partner).exclude(error="").values_list("error", flat=True)
    return len(statements)


def test_a_pull_runs_the_same_statements_for_every_customer_whatever_its_users(vendor):
    ten, sixty = statements_of_a_pull(vendor, 10, users=4), statements_of_a_pull(vendor, 60, users=4)
    per_customer = (sixty - ten) / 50
    assert per_customer == int(per_customer)  # each customer: its import's statements and its sync row's
    assert ten - 10 * per_customer < 30  # the pull's own, whatever the number of customers
    assert statements_of_a_pull(vendor, 10, users=40) == ten  # no statement per user


def peak_memory_of_a_pull(env: dict[str, str], world: World, slug: str) -> int:
    """Runs a first pull (28 days of every customer) by `pull_vendor_data` in a process of its
    own, as an operator would, against the replay (served by this process, so its memory is not
    counted); returns the pull's peak RSS in bytes."""
    with VendorReplay(world) as replay:
        env = {
            **env,
            "VENDOR_LOGIN_URL": replay.login_url,
            "VENDOR_PARTNER_CENTER_URL": replay.partner_center_url,
            "VENDOR_GRAPH_URL": replay.graph_url,
            "VENDOR_CA_BUNDLE": replay.ca_path,
            "VENDOR_REPORT_RATE": "1000/1",
        }
        manage(env, "create_partner", slug, "--name", slug)
        subprocess.run(
            [
                *MANAGE,
                "connect_vendor",
                "--partner",
                slug,
                "--tenant-id",
                world.partner_tenant,
                "--client-id",
                world.client_id,
            ],
            input=world.secret + "\n",
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        with open(os.devnull, "w") as quiet:
            process = subprocess.Popen(
                [*MANAGE, "pull_vendor_data", "--partner", slug],
                cwd=ROOT,
                env=env,
                stdout=quiet,
                stderr=subprocess.PIPE,
                text=True,
            )
            err = process.stderr.read()
            _, status, usage = os.wait4(process.pid, 0)
        assert status == 0, err
        assert f"pulled {len(world.tenants)} of {len(world.tenants)} customers;" in err
        return usage.ru_maxrss * 1024  # kilobytes on Linux


def test_a_first_pull_of_ten_times_the_customers_needs_no_more_memory(tmp_path):
    env = project_env(database_url=f"sqlite:///{tmp_path / 'pull.sqlite3'}", redis_url="")
    env |= {"CELERY_QUEUE_DIR": str(tmp_path / "queue"), "CONNECTION_KEYS": CONNECTION_KEY, "LOG_LEVEL": "WARNING"}
    del env["REDIS_URL"]  # the recompute the pull queues waits in a file-system queue
    manage(env, "migrate", "--no-input")
    small = peak_memory_of_a_pull(env, fast_world(customers=20, users=20, seed=20), "small")
    large = peak_memory_of_a_pull(env, fast_world(customers=200, users=20, seed=200), "large")
    # 200 × 28 reports: answers go to disk as they arrive, customers are imported one by one and forgotten
    assert large < small + 16 * 2**20, (small, large)


def test_pulls_go_to_their_own_queue():
    route = celery_app.amqp.router.route({}, "collection.pull", args=(), kwargs={})
    assert route["queue"].name == "collection"
    assert celery_app.amqp.router.route({}, "collection.nightly_pull", args=(), kwargs={})["queue"].name == "collection"


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the real Redis (CI sets REDIS_URL)")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_on_redis_runs_a_pull_and_its_recompute(partner):
    world = fast_world(customers=3, users=4)
    queue = f"test-{os.getpid()}-{time.monotonic_ns()}"
    database = connection.settings_dict
    with VendorReplay(world) as replay:
        env = project_env(
            database_url=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
            if connection.vendor == "postgresql"
            else f"sqlite:///{database['NAME']}",
            redis_url=os.environ["REDIS_URL"],
            VENDOR_LOGIN_URL=replay.login_url,
            VENDOR_PARTNER_CENTER_URL=replay.partner_center_url,
            VENDOR_GRAPH_URL=replay.graph_url,
            VENDOR_CA_BUNDLE=replay.ca_path,
            VENDOR_REPORT_RATE="1000/1",
            CONNECTION_KEYS=CONNECTION_KEY,
        )
        VendorConnection.objects.create(
            partner=partner,
            tenant_id=world.partner_tenant,
            client_id=world.client_id,
            encrypted_secret=encryption.encrypt(world.secret),
        )
        run = services.pull_start(partner=partner, trigger=PullTrigger.MANUAL)
        celery_app.conf.task_always_eager = False
        try:
            with private_folder() as folder, celery_worker(env, folder / "worker.log", queue=queue) as worker:
                tasks.pull.apply_async(kwargs={"run_id": run.pk}, queue=queue)
                finished = PullRun.objects.filter(pk=run.pk, status=PullStatus.SUCCEEDED)
                wait_for(finished.exists, timeout=90, what="the worker's pull", log=folder / "worker.log")
                # the recompute it queued goes to the recompute queue (not this worker's): it is queued
                assert worker.poll() is None
        finally:
            celery_app.conf.task_always_eager = True
    assert CustomerSync.objects.filter(partner=partner, error="", last_report_day=YESTERDAY).count() == 3
    assert Customer.objects.filter(partner=partner).count() == 3


def test_an_unforeseen_failure_of_one_customer_is_its_own(vendor, partner, monkeypatch):
    world = fast_world(customers=3, users=4)
    vendor(world)
    broken = world.tenants[1].tenant_id
    write = VendorClient.write_subscribed_skus

    def disk_full_for_one(self, tenant_id, path):
        if tenant_id == broken:
            raise OSError(28, "No space left on device")
        return write(self, tenant_id, path)

    monkeypatch.setattr(VendorClient, "write_subscribed_skus", disk_full_for_one)
    _, err = pull(partner)
    assert "pulled 2 of 3 customers, 1 failed" in err
    sync = CustomerSync.objects.get(partner=partner, tenant_id=broken)
    assert sync.error_kind == ErrorKind.UNAVAILABLE
    assert f"The answers of customer {broken} could not be stored (OSError: [Errno 28] No space left" in sync.error
    assert CustomerSync.objects.filter(partner=partner, error="", last_report_day=YESTERDAY).count() == 2
    assert PullRun.objects.get(partner=partner).status == PullStatus.PARTIAL


def test_credentials_refused_in_the_middle_of_a_pull_end_it_with_one_message(vendor, partner, monkeypatch, settings):
    world = fast_world(customers=6, users=3)
    vendor(world)
    settings.VENDOR_PULL_CONCURRENCY = 1  # one customer at a time: those after the refusal are not imported
    refused_from = world.tenants[2].tenant_id
    write = VendorClient.write_subscriptions

    def secret_expired_from_the_third(self, tenant_id, path):
        if tenant_id == refused_from:
            raise VendorError(
                ErrorKind.CREDENTIALS_REFUSED, "The login service refused the app's credentials (AADSTS7000222)."
            )
        return write(self, tenant_id, path)

    monkeypatch.setattr(VendorClient, "write_subscriptions", secret_expired_from_the_third)
    with pytest.raises(CommandError, match=r"Nothing could be pulled: Credentials refused: .*AADSTS7000222"):
        pull(partner)
    run = PullRun.objects.get(partner=partner)
    assert run.status == PullStatus.FAILED
    assert not CustomerSync.objects.filter(partner=partner).exclude(error="").exists()  # no line per customer
    assert not CustomerSync.objects.filter(partner=partner, tenant_id=refused_from).exists()


# --- the client alone, against the replay ---------------------------------------------------------


def client_of(replay: VendorReplay, world: World, **options) -> VendorClient:
    endpoints = Endpoints(replay.login_url, replay.partner_center_url, replay.graph_url, replay.ca_path)
    credentials = Credentials(world.partner_tenant, world.client_id, world.secret)
    return VendorClient(credentials, endpoints, report_rate=Rate(1000, 1.0), **options)


def test_a_429_is_waited_out_for_its_retry_after(tmp_path):
    world = fast_world(customers=1, users=3)
    tenant = world.tenants[0].tenant_id
    world.faults[tenant] = {"throttled_once"}
    with VendorReplay(world) as replay:
        client = client_of(replay, world)
        report = client.write_activity_report(tenant, YESTERDAY, tmp_path / "report.csv")
        client.close()
    asked = [seen for seen in replay.requests if "getOffice365" in seen.path]
    assert [seen.status for seen in asked] == [429, 302]
    assert asked[1].at - asked[0].at >= 1.0  # its Retry-After: 1
    assert (report.rows, client.stats.throttled) == (len(world.report_rows(tenant, YESTERDAY)), 1)


def test_a_retry_after_longer_than_the_client_waits_gives_up_at_once(tmp_path):
    world = fast_world(customers=1, users=3)
    tenant = world.tenants[0].tenant_id
    world.faults[tenant] = {"throttled_forever"}
    with VendorReplay(world) as replay:
        client = client_of(replay, world, max_wait=0.5)
        with pytest.raises(VendorError) as refused:
            client.write_activity_report(tenant, YESTERDAY, tmp_path / "report.csv")
        client.close()
    assert refused.value.kind == ErrorKind.THROTTLED
    assert "kept being throttled by the vendor (once)" in refused.value.message
    assert replay.count("getOffice365", tenant=tenant) == 1  # not asked again within this pull
