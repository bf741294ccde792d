"""The vendor connection (SPEC §9): only a Global admin sees or changes it, its secret is encrypted
at rest with CONNECTION_KEYS (rotation works), and it is never shown back, logged, exported or
returned by the API."""

from __future__ import annotations

import io
import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.roles import Role
from collection import encryption
from collection.models import VendorConnection
from tests.conftest import CONNECTION_KEY, client_for, token_client_for

TENANT = "11111111-2222-4333-8444-555555555555"
CLIENT = "66666666-7777-4888-9999-000000000000"
SECRET = "very~secret.value_0123456789"


@pytest.fixture
def global_admin(staff):
    return client_for(staff[Role.GLOBAL_ADMIN])


def save(client, secret: str = SECRET, **fields: str):
    form = {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": secret} | fields
    return client.post("/settings/connection/", form)


def test_a_global_admin_saves_the_connection_and_the_secret_is_stored_encrypted(global_admin, partner):
    assert save(global_admin).status_code == 302
    connection = VendorConnection.objects.get(partner=partner)
    assert (connection.tenant_id, connection.client_id) == (TENANT, CLIENT)
    assert SECRET not in connection.encrypted_secret
    assert encryption.decrypt(connection.encrypted_secret) == SECRET
    page = global_admin.get("/settings/connection/").content.decode()
    assert TENANT in page
    assert SECRET not in page
    assert connection.encrypted_secret not in page
    assert 'name="client_secret"' in page  # an empty password field: never filled back


def test_saving_without_a_secret_keeps_the_stored_one(global_admin, partner):
    save(global_admin)
    before = VendorConnection.objects.get(partner=partner).encrypted_secret
    assert save(global_admin, secret="", client_id=CLIENT.replace("6", "7")).status_code == 302
    connection = VendorConnection.objects.get(partner=partner)
    assert connection.encrypted_secret == before
    assert connection.client_id == CLIENT.replace("6", "7")


def test_bad_ids_and_a_missing_first_secret_are_named(global_admin, partner):
    page = save(global_admin, secret="", tenant_id="not-a-guid").content.decode()
    assert "A tenant id is a GUID" in page
    assert "Enter the client secret: there is none stored yet." in page
    assert not VendorConnection.objects.exists()


@pytest.mark.parametrize("role", [Role.USER_ADMIN, Role.ADMIN_AGENT, Role.SALES_AGENT])
def test_no_other_role_sees_or_changes_the_connection(staff, partner, role):
    client = client_for(staff[role])
    assert client.get("/settings/connection/").status_code == 403
    assert save(client).status_code == 403
    assert not VendorConnection.objects.exists()
    assert "Vendor connection" not in client_for(staff[role]).get("/settings/").content.decode()


def test_the_api_never_returns_the_connection(staff, partner, global_admin):
    save(global_admin)
    client = token_client_for(staff[Role.GLOBAL_ADMIN])
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "encrypted_secret" not in schema
    assert "client_secret" not in schema
    for path in ("/api/sync/customers/", "/api/sync/pulls/"):
        answer = client.get(path).content.decode()
        assert SECRET not in answer
        assert CLIENT not in answer


def test_rotation_encrypts_every_secret_with_the_new_first_key(global_admin, partner, settings):
    save(global_admin)
    old = VendorConnection.objects.get(partner=partner).encrypted_secret
    new_key = Fernet.generate_key().decode()
    settings.CONNECTION_KEYS = [new_key, CONNECTION_KEY]
    call_command("rotate_connection_keys")
    rotated = VendorConnection.objects.get(partner=partner).encrypted_secret
    assert rotated != old
    settings.CONNECTION_KEYS = [new_key]  # the old key gone: the secret still reads
    assert encryption.decrypt(rotated) == SECRET
    settings.CONNECTION_KEYS = [CONNECTION_KEY]  # only the old key: the rotated secret no longer reads
    with pytest.raises(encryption.SecretUnreadable):
        encryption.decrypt(rotated)


def test_connect_vendor_reads_the_secret_from_standard_input(partner, monkeypatch, caplog):
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    stderr = io.StringIO()
    with caplog.at_level(logging.DEBUG):
        call_command(
            "connect_vendor", "--partner", partner.slug, "--tenant-id", TENANT, "--client-id", CLIENT, stderr=stderr
        )
    connection = VendorConnection.objects.get(partner=partner)
    assert encryption.decrypt(connection.encrypted_secret) == SECRET
    assert SECRET not in stderr.getvalue()
    assert SECRET not in caplog.text


def test_connect_vendor_refuses_an_empty_secret_and_bad_ids(partner, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    with pytest.raises(CommandError, match="the secret on standard input"):
        call_command("connect_vendor", "--partner", partner.slug, "--tenant-id", TENANT, "--client-id", CLIENT)
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    with pytest.raises(CommandError, match="tenant_id: A tenant id is a GUID"):
        call_command("connect_vendor", "--partner", partner.slug, "--tenant-id", "nope", "--client-id", CLIENT)
    assert not VendorConnection.objects.exists()


def test_the_secret_is_in_no_log_line_and_no_export(global_admin, partner, caplog):
    with caplog.at_level(logging.DEBUG):
        save(global_admin)
        global_admin.get("/settings/connection/")
        global_admin.get("/sync/")
        export = global_admin.get("/analytics/export.csv?grain=family")
    assert SECRET not in caplog.text
    assert SECRET not in b"".join(getattr(export, "streaming_content", [export.content])).decode()


def test_without_keys_production_refuses_to_store_a_secret(settings):
    settings.CONNECTION_KEYS, settings.DEBUG = [], False
    with pytest.raises(Exception, match="Set CONNECTION_KEYS"):
        encryption.encrypt(SECRET)
    settings.DEBUG = True  # development derives a key from SECRET_KEY
    assert encryption.decrypt(encryption.encrypt(SECRET)) == SECRET
    assert json.dumps(encryption.generate_key())
