"""Shared fixtures: two partners with identically shaped data, staff of every role, clients."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.apps import apps
from django.core.management.base import BaseCommand
from django.test import Client, TestCase
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from accounts.models import Invitation, Partner, StaffUser
from accounts.roles import Role
from collection import encryption
from collection.models import CustomerSync, PullRun, VendorConnection
from customers.models import Activity
from imports.models import ImportRun
from metrics.models import SkuSetting
from metrics.services import metrics_recompute, yesterday
from partnerinsights.celery import app as celery_app
from tests import factories

PASSWORD = "correct-horse-battery-staple"
MARKER = "ZZ-B-"  # in every text of partner B's data: no response to partner A may contain it
BRAVO_TENANT = "b0b0b0b0-0000-4000-8000-00000000000b"
CONNECTION_KEY = "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMtb2Yta2V5ISE="  # a Fernet key of the tests' own
SNAPSHOT_DATE = yesterday()  # the date partner B's (and the API tests' partner A's) snapshots are of


@pytest.fixture(autouse=True)
def _unscoped():
    """Tests build data outside any request; requests through the client set their own scope."""
    with scopes_disabled():
        yield


@pytest.fixture(autouse=True)
def _commands_start_scoped(monkeypatch):
    """Management commands start as in production: scoping on and no partner, so a command
    that queries tenant data without entering its partner's scope fails here too (the
    autouse `_unscoped` above would otherwise hide it)."""
    execute = BaseCommand.execute

    def scoped_execute(self, *args, **kwargs):
        with scope():
            return execute(self, *args, **kwargs)

    monkeypatch.setattr(BaseCommand, "execute", scoped_execute)


@pytest.fixture(autouse=True, scope="session")
def _eager_celery():
    """Tasks run in the test's process; the real worker is tested on its own (test_tasks)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _own_cache_keys(settings):
    """Each test counts API requests afresh (throttles), in memory or in the shared Redis alike:
    user ids repeat between tests, and Redis keeps counters between runs."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"},
    }


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path_factory):
    """Stored uploads, and import progress kept in files (no REDIS_URL), go to folders of the
    test's own, never the project's var/."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
    progress = settings.CACHES["imports"]
    if progress["BACKEND"].endswith("FileBasedCache"):
        folder = str(tmp_path_factory.mktemp("cache"))
        settings.CACHES = {**settings.CACHES, "imports": {**progress, "LOCATION": folder}}


@pytest.fixture(autouse=True)
def _no_vendor_on_the_internet(settings):
    """No test reaches the vendor's real services: a pull or a connection test that a test does not
    point at the replay server (tests/vendor_replay.py) meets a closed local port and gives up."""
    for name in ("VENDOR_LOGIN_URL", "VENDOR_PARTNER_CENTER_URL", "VENDOR_GRAPH_URL"):
        setattr(settings, name, "https://127.0.0.1:9")
    settings.VENDOR_RETRY_BUDGET = 0
    settings.CONNECTION_KEYS = [CONNECTION_KEY]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",  # users made outside a test (module fixtures)
    ]


@pytest.fixture
def partner(db) -> Partner:
    return factories.PartnerFactory(slug="alpha", name="Alpha Partners")


@pytest.fixture
def other_partner(db) -> Partner:
    return factories.PartnerFactory(slug="bravo", name="ZZ-B- Bravo Partners")


def staff_for(partner: Partner, role: Role) -> StaffUser:
    return StaffUser.objects.create_user(f"{role.value}@{partner.slug}.example", PASSWORD, partner=partner, role=role)


TENANT_APPS = ("accounts", "customers", "metrics", "imports", "exports", "collection")
SIGN_IN_BOOKKEEPING = {"last_login", "last_used_at"}  # every signed-in request may touch them


def tenant_tables() -> dict[str, list[tuple]]:
    """Every row of every table of partner data (the shared catalog and staff included), by pk.

    Import runs are left out: a refused import records its run, and writes nothing else.
    """
    tables = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label in TENANT_APPS and model is not ImportRun:
            columns = [f.attname for f in model._meta.concrete_fields if f.name not in SIGN_IN_BOOKKEEPING]
            tables[model._meta.db_table] = list(model._base_manager.order_by("pk").values_list(*columns))
    return tables


def client_for(user: StaffUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def log_in(client: Client, email: str, password: str) -> bool:
    """Logs in through the login page, as a person does; True when it worked."""
    response = client.post("/accounts/login/", {"username": email, "password": password})
    return response.status_code == 302 and "_auth_user_id" in client.session


def committed(call, *args, **kwargs):
    """`call(*args, **kwargs)` (a client's request) as production runs it: its writes are committed
    when it ends, so the work it queued on commit has run by then (an import, run eagerly here)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return call(*args, **kwargs)


def upload(client: Client, files, path: str = "/imports/"):
    """Uploads through the import page and follows its redirect to the run's page, once the
    queued import has run: (the upload's answer, the run's page)."""
    answer = committed(client.post, path, {"files": files})
    return answer, client.get(answer["Location"]) if answer.status_code == 302 else answer


def token_client_for(user: StaffUser) -> Client:
    """A client without a session that sends a fresh API token of `user`."""
    _, secret = account_services.api_token_create(user=user, name="test")
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def staff(partner) -> dict[Role, StaffUser]:
    """One staff user of `partner` per role."""
    return {role: staff_for(partner, role) for role in Role}


@pytest.fixture
def admin_client(staff) -> Client:
    return client_for(staff[Role.GLOBAL_ADMIN])


@pytest.fixture
def bravo(other_partner) -> dict:
    """Partner B's data, carrying the marker and the same external ids as partner A's, with
    published metric snapshots, settings, an import run, a staff member, an API token and a pending
    invitation."""
    customer = factories.CustomerFactory(partner=other_partner, external_id="C1", name=f"{MARKER}Customer")
    subscription = factories.SubscriptionFactory(
        customer=customer, external_id="S1", quantity=50, end_date=SNAPSHOT_DATE + dt.timedelta(days=10)
    )
    user = factories.EndUserFactory(
        customer=customer, external_id="U1", upn=f"{MARKER}u1@c1.example", display_name=f"{MARKER}User"
    )
    idle = factories.EndUserFactory(
        customer=customer, external_id="U2", upn=f"{MARKER}idle@c1.example", display_name=f"{MARKER}Idle"
    )
    factories.AssignmentFactory(user=user, subscription=subscription)
    factories.AssignmentFactory(user=idle, subscription=subscription)  # an inactive licensed user
    Activity.objects.create(partner=other_partner, user=user, workload="exchange", activity_date=SNAPSHOT_DATE)
    SkuSetting.objects.create(partner=other_partner, sku="ENTERPRISEPACK", monthly_price=99, excluded=False)
    recompute = metrics_recompute(partner=other_partner, as_of=SNAPSHOT_DATE, trigger="nightly")
    run = ImportRun.objects.create(
        partner=other_partner, origin=ImportRun.Origin.COMMAND, source_name=f"{MARKER}import", status="succeeded"
    )
    staff = staff_for(other_partner, Role.SALES_AGENT)
    token, _ = account_services.api_token_create(user=staff, name=f"{MARKER}token")
    invitation = Invitation.objects.create(
        partner=other_partner, email="invitee@bravo.example", role=Role.SALES_AGENT, full_name=f"{MARKER}Invitee"
    )
    connection = VendorConnection.objects.create(
        partner=other_partner,
        tenant_id=BRAVO_TENANT,
        client_id=BRAVO_TENANT,
        encrypted_secret=encryption.encrypt(f"{MARKER}client-secret"),
    )
    pull = PullRun.objects.create(partner=other_partner, trigger="manual", status="partial", error=f"{MARKER}error")
    CustomerSync.objects.create(
        partner=other_partner, tenant_id="C1", customer=customer, name=f"{MARKER}Customer", error=f"{MARKER}failed"
    )
    return {
        "customer": customer,
        "run": run,
        "staff": staff,
        "recompute": recompute,
        "token": token,
        "invitation": invitation,
        "connection": connection,
        "pull": pull,
    }
