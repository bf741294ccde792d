"""Shared fixtures: two partners with identically shaped data, staff of every role, clients."""

from __future__ import annotations

import pytest
from django.core.management.base import BaseCommand
from django.test import Client
from django_scopes import scope, scopes_disabled

from accounts.models import Partner, StaffUser
from accounts.roles import Role
from partnerinsights.celery import app as celery_app
from tests import factories

PASSWORD = "correct-horse-battery-staple"


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


def client_for(user: StaffUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff(partner) -> dict[Role, StaffUser]:
    """One staff user of `partner` per role."""
    return {role: staff_for(partner, role) for role in Role}


@pytest.fixture
def admin_client(staff) -> Client:
    return client_for(staff[Role.GLOBAL_ADMIN])
