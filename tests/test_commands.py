"""create_partner and create_staff (SPEC §5): exit 0 on success, 1 on any error; messages on stderr."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from accounts.models import Partner, StaffUser

ROOT = Path(__file__).resolve().parent.parent


def test_create_partner(db):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_partner", "acme", name="Acme Cloud", stdout=out, stderr=err)
    assert Partner.objects.get(slug="acme").name == "Acme Cloud"
    assert out.getvalue() == ""
    assert "Created partner 'acme'" in err.getvalue()


def test_create_partner_twice_is_an_error(db):
    call_command("create_partner", "acme", name="Acme", stderr=io.StringIO())
    with pytest.raises(CommandError, match="slug: Partner with this Slug already exists"):
        call_command("create_partner", "acme", name="Acme again")


def test_create_staff_with_password_can_log_in(partner):
    call_command(
        "create_staff",
        partner="alpha",
        email="Sam@Alpha.example",
        role="sales_agent",
        password="a-Long-password-1",
        stderr=io.StringIO(),
    )
    user = authenticate(
        RequestFactory().post("/accounts/login/"), username="sam@alpha.example", password="a-Long-password-1"
    )
    assert (user.partner, user.role) == (partner, "sales_agent")


def test_create_staff_without_password_cannot_log_in_yet(partner):
    call_command("create_staff", partner="alpha", email="x@alpha.example", role="admin_agent", stderr=io.StringIO())
    assert not StaffUser.objects.get(email="x@alpha.example").has_usable_password()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partner", "nobody", "--email", "a@b.example", "--role", "sales_agent"], "No partner with slug 'nobody'"),
        (["--partner", "alpha", "--email", "not-an-email", "--role", "sales_agent"], "email: Enter a valid email"),
    ],
)
def test_create_staff_errors(partner, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_staff", *args)


def test_commands_exit_1_on_error_with_the_message_on_stderr(tmp_path):
    env = {"DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "manage.py", "create_staff", "--partner", "x", "--email", "a@b.example", "--role", "boss"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "invalid choice: 'boss'" in result.stderr
    assert result.stdout == ""


# The environment of a production deployment: no DEBUG, a strong key, the site's host name.
PRODUCTION_ENV = {
    "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-0123456789",
    "ALLOWED_HOSTS": "insights.example.com",
    "PATH": "/usr/bin:/bin",
}


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("debug", [{"DEBUG": "false"}, {}], ids=["debug-false", "debug-unset"])
def test_deployment_checks_are_clean_with_production_settings(debug):
    result = deploy_check({**PRODUCTION_ENV, **debug})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_deployment_checks_refuse_a_weak_secret_key():
    result = deploy_check({**PRODUCTION_ENV, "SECRET_KEY": "changeme"})
    assert result.returncode != 0
    assert "security.W009" in result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"DEBUG": "false", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
