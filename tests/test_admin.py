"""A safe admin: the database refuses the admin's flags on a partner's users, tenant data is
read-only there for everyone (superusers included), API tokens are listed and revocable, and
operators may be read-only support accounts."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client

from accounts import services as account_services
from accounts.models import ApiToken, Partner, StaffUser
from accounts.operators.services import SUPPORT_GROUP
from accounts.roles import Role
from metrics.models import InsightSettings
from tests.conftest import PASSWORD, client_for, log_in
from tests.processes import ROOT

SERVER_URL = os.environ.get("DATABASE_URL", "")


@pytest.fixture
def operator(db) -> StaffUser:
    return StaffUser.objects.create_superuser("ops@platform.example", PASSWORD)


@pytest.fixture
def operator_client(operator) -> Client:
    return client_for(operator)


# --- the database refuses the admin's flags on a partner's users ----------------------------


@pytest.mark.parametrize(
    "flags", [{"is_staff": True}, {"is_superuser": True}, {"is_staff": True, "is_superuser": True}]
)
def test_the_database_refuses_admin_flags_on_a_partners_user(staff, flags):
    user = staff[Role.GLOBAL_ADMIN]
    with pytest.raises(IntegrityError), transaction.atomic():
        StaffUser.objects.filter(pk=user.pk).update(**flags)
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser) == (False, False)


def test_model_validation_says_why(staff):
    user = staff[Role.USER_ADMIN]
    user.is_superuser = True
    with pytest.raises(ValidationError, match="cannot be staff or superusers of the admin"):
        user.full_clean()


def test_operators_have_no_partner_and_are_staff_or_superusers(partner):
    StaffUser.objects.create(email="support@platform.example", is_staff=True)  # read-only support: allowed
    StaffUser.objects.create(email="root@platform.example", is_staff=True, is_superuser=True)
    for fields in (
        {"email": "nobody@platform.example"},  # neither a partner's user nor an operator
        {"email": "mixed@platform.example", "is_superuser": True, "partner": partner, "role": Role.GLOBAL_ADMIN},
        {"email": "role@platform.example", "is_staff": True, "role": Role.SALES_AGENT},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            StaffUser.objects.create(**fields)


def test_an_operator_cannot_make_a_partners_user_staff_in_the_admin(operator_client, staff):
    user = staff[Role.GLOBAL_ADMIN]
    url = f"/admin/accounts/staffuser/{user.pk}/change/"
    page = operator_client.get(url)
    assert page.status_code == 200  # shown, read-only
    assert b'name="is_superuser"' not in page.content
    assert b'name="_save"' not in page.content
    form = {"email": user.email, "partner": user.partner_id, "role": user.role, "is_active": "on"}
    for flags in ({"is_staff": "on"}, {"is_superuser": "on"}):
        assert operator_client.post(url, {**form, **flags}).status_code == 403
    assert operator_client.post(f"/admin/accounts/staffuser/{user.pk}/password/", {}).status_code == 403
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser, user.role) == (False, False, Role.GLOBAL_ADMIN)


def test_the_admin_adds_operators_only(operator_client, partner):
    form = {"email": "helper@platform.example", "is_staff": "on", "password1": "", "password2": ""}
    form.update(usable_password="false")
    response = operator_client.post("/admin/accounts/staffuser/add/", {**form, "partner": partner.pk, "role": "x"})
    assert response.status_code == 302, response.content.decode()[:3000]
    added = StaffUser.objects.get(email="helper@platform.example")
    assert (added.partner, added.role, added.is_staff, added.is_superuser) == (None, "", True, False)
    assert [group.name for group in added.groups.all()] == [SUPPORT_GROUP]  # read-only from the start
    refused = operator_client.post(
        "/admin/accounts/staffuser/add/", {**form, "email": "x@platform.example", "is_staff": ""}
    )
    assert b"An operator is staff (read-only support" in refused.content
    assert not StaffUser.objects.filter(email="x@platform.example").exists()


def test_deactivating_partner_staff_in_the_admin_goes_through_the_staff_service(operator_client, staff):
    user = staff[Role.SALES_AGENT]
    response = operator_client.post(
        "/admin/accounts/staffuser/", {"action": "deactivate", "_selected_action": [user.pk]}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.is_active


# --- tenant data is read-only in the admin ---------------------------------------------------

# Tenant models with their own admin rules here: staff users (above).
OWN_RULES = {StaffUser}


def tenant_admins() -> list[type]:
    return sorted(
        (
            model
            for model in admin.site._registry
            if model not in OWN_RULES and any(field.name == "partner" for field in model._meta.get_fields())
        ),
        key=lambda model: model._meta.label,
    )


def test_every_tenant_model_in_the_admin_is_checked_here():
    labels = {model._meta.label for model in tenant_admins()}
    expected = {"customers.Customer", "customers.Product", "customers.Subscription", "metrics.RecomputeRun"}
    expected |= {"imports.ImportRun", "collection.VendorConnection", "collection.PullRun", "collection.CustomerSync"}
    assert expected | {"metrics.InsightSettings", "metrics.SkuSetting"} == labels


@pytest.mark.parametrize("model", tenant_admins(), ids=lambda model: model._meta.label)
def test_tenant_data_is_read_only_in_the_admin_even_for_superusers(operator_client, bravo, other_partner, model):
    InsightSettings.objects.create(partner=other_partner)
    rows = model._default_manager
    obj = rows.filter(partner=other_partner).first() or rows.first()  # products: the shared catalog
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    listing = operator_client.get(base)
    assert listing.status_code == 200
    assert b"delete_selected" not in listing.content
    assert operator_client.get(f"{base}?q=ZZ").status_code == 200
    assert operator_client.get(f"{base}add/").status_code == 403
    detail = operator_client.get(f"{base}{obj.pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    before = list(model._default_manager.filter(pk=obj.pk).values())
    assert operator_client.post(f"{base}{obj.pk}/change/", {}).status_code == 403
    assert operator_client.post(f"{base}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    assert list(model._default_manager.filter(pk=obj.pk).values()) == before


def test_a_connection_shows_no_secret_in_the_admin(operator_client, bravo):
    connection = bravo["connection"]
    for page in ("/admin/collection/vendorconnection/", f"/admin/collection/vendorconnection/{connection.pk}/change/"):
        content = operator_client.get(page).content.decode()
        assert connection.tenant_id in content
        assert "client-secret" not in content
        assert connection.encrypted_secret[:20] not in content


def test_a_partner_is_never_deleted_through_the_admin(operator_client, bravo, other_partner):
    assert operator_client.get(f"/admin/accounts/partner/{other_partner.pk}/delete/").status_code == 403
    assert (
        operator_client.post(f"/admin/accounts/partner/{other_partner.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    listing = operator_client.get("/admin/accounts/partner/")
    assert b"delete_selected" not in listing.content
    assert Partner.objects.filter(pk=other_partner.pk).exists()


# --- API tokens ------------------------------------------------------------------------------


def test_api_tokens_are_listed_searched_and_revoked_without_their_hash(operator_client, staff, bravo):
    user = staff[Role.ADMIN_AGENT]
    token, secret = account_services.api_token_create(user=user, name="nightly sync")
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/customers/").status_code == 200
    listing = operator_client.get("/admin/accounts/apitoken/").content.decode()
    assert token.prefix in listing
    assert bravo["token"].prefix in listing
    assert token.key_hash not in listing
    assert token.prefix in operator_client.get(f"/admin/accounts/apitoken/?q={user.email}").content.decode()
    assert token.prefix in operator_client.get(f"/admin/accounts/apitoken/?q={token.prefix}").content.decode()
    assert token.prefix not in operator_client.get("/admin/accounts/apitoken/?q=nobody@x").content.decode()
    detail = operator_client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    assert token.key_hash not in detail
    assert operator_client.get("/admin/accounts/apitoken/add/").status_code == 403
    assert operator_client.post(f"/admin/accounts/apitoken/{token.pk}/delete/", {"post": "yes"}).status_code == 403

    revoked = operator_client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bravo["token"].__class__.objects.get(pk=bravo["token"].pk).revoked_at is None  # only the chosen one
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/customers/").status_code == 401


# --- read-only support accounts ------------------------------------------------------------


def test_a_support_account_reads_the_admin_and_changes_nothing(monkeypatch, staff, bravo, other_partner):
    password = "a-long-support-passphrase-2024"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n"))
    call_command("create_support_user", "support@platform.example")
    support = StaffUser.objects.get(email="support@platform.example")
    assert (support.partner, support.role, support.is_staff, support.is_superuser) == (None, "", True, False)
    assert [group.name for group in support.groups.all()] == [SUPPORT_GROUP]
    permissions = set(support.get_all_permissions())
    views = Permission.objects.filter(codename__startswith="view_")
    assert permissions == {f"{p.content_type.app_label}.{p.codename}" for p in views}
    assert "customers.view_customer" in permissions

    client = Client()
    assert log_in(client, support.email, password)
    assert client.get("/admin/").status_code == 200
    for page in ("customers/customer", "accounts/staffuser", "accounts/apitoken", "metrics/recomputerun"):
        assert client.get(f"/admin/{page}/").status_code == 200, page
    member = staff[Role.GLOBAL_ADMIN]
    assert client.get(f"/admin/accounts/staffuser/{member.pk}/change/").status_code == 200
    assert client.post(f"/admin/accounts/staffuser/{member.pk}/change/", {"is_active": ""}).status_code == 403
    assert client.get("/admin/accounts/partner/add/").status_code == 403
    assert client.post(f"/admin/accounts/partner/{other_partner.pk}/change/", {"name": "x"}).status_code == 403
    token = bravo["token"]
    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    itself = f"/admin/accounts/staffuser/{support.pk}/change/"
    assert client.post(itself, {"email": support.email, "is_staff": "on", "is_superuser": "on"}).status_code == 403
    member.refresh_from_db()
    support.refresh_from_db()
    assert (member.is_active, support.is_superuser) == (True, False)


def test_create_support_user_refuses_a_weak_password_and_a_taken_email(monkeypatch, staff):
    monkeypatch.setattr("sys.stdin", io.StringIO("password\n"))
    with pytest.raises(Exception, match="too common"):
        call_command("create_support_user", "weak@platform.example")
    with pytest.raises(Exception, match="already exists"):
        call_command("create_support_user", staff[Role.SALES_AGENT].email, "--no-password")
    assert not StaffUser.objects.filter(email="weak@platform.example").exists()


# --- the migration on existing data ----------------------------------------------------------


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgresql,
                pytest.mark.skipif(not SERVER_URL.startswith("postgres"), reason="needs the PostgreSQL server (CI)"),
            ],
        ),
    ]
)
def empty_database(request, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database: an SQLite file, or one on the run's PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        name, server = f"pi_admin_{secrets.token_hex(6)}", urlsplit(SERVER_URL)
        with psycopg.connect(server._replace(path="/postgres").geturl(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield server._replace(path=f"/{name}").geturl()
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_clears_admin_flags_of_partner_users_and_keeps_operators(empty_database: str, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
    env.update(DEBUG="true", DATABASE_URL=empty_database, CELERY_QUEUE_DIR=str(tmp_path))
    _manage(env, "migrate", "accounts", "0002", "-v", "0")
    insert = (
        "from django.db import connection; c = connection.cursor(); "
        "c.execute(\"INSERT INTO accounts_partner (slug, name, created_at) VALUES ('p', 'P', '2024-01-01')\"); "
        'row = "INSERT INTO accounts_staffuser (password, email, full_name, partner_id, role, is_active, is_staff, '
        "is_superuser, date_joined) VALUES ('', %s, '', %s, %s, true, %s, %s, '2024-01-01')\"; "
        "c.execute(row, ['member@p.example', 1, 'global_admin', True, True]); "
        "c.execute(row, ['root@platform.example', None, '', True, True])"
    )
    _manage(env, "shell", "-v", "0", "-c", insert)
    _manage(env, "migrate", "-v", "0")
    flags = "from accounts.models import StaffUser; print(sorted(StaffUser.objects.values_list('email', 'is_staff', "
    flags += "'is_superuser')))"
    assert _manage(env, "shell", "-v", "0", "-c", flags).strip() == (
        "[('member@p.example', False, False), ('root@platform.example', True, True)]"
    )
    group = (
        "from django.contrib.auth.models import Group, Permission; "
        "views = set(Permission.objects.filter(codename__startswith='view_').values_list('pk', flat=True)); "
        f"held = set(Group.objects.get(name='{SUPPORT_GROUP}').permissions.values_list('pk', flat=True)); "
        "print(held == views, len(held))"
    )
    held = _manage(env, "shell", "-v", "0", "-c", group).split()
    assert held[0] == "True"
    assert int(held[1]) > 20  # every model's view permission, and only those
