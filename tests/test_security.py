"""Accounts, sessions and headers (shared/RELIABILITY.md): login throttling, CSP, CSRF, session
lifecycle, password validation, and the headers and cookies of production settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from accounts.roles import Role
from tests.conftest import PASSWORD, client_for, log_in
from tests.test_commands import PRODUCTION_ENV, ROOT
from tests.test_metrics import World


def attempt(email: str, password: str, address: str = "10.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=address)
    client.logged_in = log_in(client, email, password)
    return client


class TestLoginThrottling:
    def test_five_failures_lock_that_account_from_that_address(self, staff):
        email = staff[Role.SALES_AGENT].email
        for _ in range(5):
            assert not attempt(email, "wrong-password").logged_in
        locked = Client(REMOTE_ADDR="10.0.0.1")
        response = locked.post("/accounts/login/", {"username": email, "password": PASSWORD})
        assert response.status_code == 429
        assert "Too many failed sign-ins" in response.content.decode()
        assert "_auth_user_id" not in locked.session

    def test_nobody_else_is_locked_out(self, staff):
        email = staff[Role.SALES_AGENT].email
        for _ in range(6):
            attempt(email, "wrong-password")
        assert attempt(staff[Role.GLOBAL_ADMIN].email, PASSWORD).logged_in  # another user, same address
        assert attempt(email, PASSWORD, address="10.0.0.2").logged_in  # the same user elsewhere

    def test_success_resets_the_count(self, staff):
        email = staff[Role.SALES_AGENT].email
        for _ in range(4):
            attempt(email, "wrong-password")
        assert attempt(email, PASSWORD).logged_in
        for _ in range(4):
            attempt(email, "wrong-password")
        assert attempt(email, PASSWORD).logged_in

    def test_behind_a_proxy_the_lock_follows_the_address_the_proxy_saw(self, staff, settings):
        """TRUSTED_PROXY_COUNT=1: the client is the last X-Forwarded-For entry (the one the proxy
        appended); what a client writes into the header itself changes nothing."""
        settings.TRUSTED_PROXY_COUNT = 1
        email = staff[Role.SALES_AGENT].email
        for forged in range(5):  # every attempt forges another first entry
            via_proxy = Client(REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR=f"198.51.100.{forged}, 203.0.113.7")
            assert not log_in(via_proxy, email, "wrong-password")
        locked = Client(REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.7")
        assert locked.post("/accounts/login/", {"username": email, "password": PASSWORD}).status_code == 429
        elsewhere = Client(REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="192.0.2.44")
        assert log_in(elsewhere, email, PASSWORD)  # the same user from another client, same proxy

    def test_unknown_user_and_wrong_password_read_the_same(self, staff):
        wrong = Client().post("/accounts/login/", {"username": staff[Role.SALES_AGENT].email, "password": "nope"})
        unknown = Client().post("/accounts/login/", {"username": "nobody@alpha.example", "password": "nope"})
        assert wrong.status_code == unknown.status_code == 200
        assert wrong.context["form"].errors == unknown.context["form"].errors


def test_csp_allows_only_our_own_scripts(admin_client):
    policy = admin_client.get("/customers/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


def test_pages_carry_no_inline_script(admin_client, partner):
    world = World(partner)
    world.licensed(world.sub())
    world.compute()
    inline = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
    for path in ["/customers/", f"/customers/{world.customer.pk}/insights/", "/settings/", "/imports/", "/status/"]:
        text = admin_client.get(path).content.decode()
        assert not inline.findall(text), path


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/settings/", {"low_usage_pct": "1"}),
        ("/status/recompute/", {}),
        ("/staff/invite/", {"email": "x@alpha.example", "role": "sales_agent"}),
        ("/imports/", {}),
        ("/imports/1/restart/", {}),
        ("/accounts/logout/", {}),
    ],
)
def test_csrf_is_enforced_on_unsafe_requests(staff, path, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff[Role.GLOBAL_ADMIN])
    assert client.post(path, data).status_code == 403
    assert client_for(staff[Role.GLOBAL_ADMIN]).get("/customers/").status_code == 200


class TestSessions:
    def test_signing_in_gives_a_new_session_key(self, staff):
        client = Client()
        session = client.session  # an anonymous session, as a planted cookie would be
        session["planted"] = True
        session.save()
        assert log_in(client, staff[Role.SALES_AGENT].email, PASSWORD)
        assert client.session.session_key != session.session_key
        assert not SessionStore().exists(session.session_key)

    def test_a_password_change_ends_the_users_other_sessions(self, staff):
        email, new = staff[Role.SALES_AGENT].email, "a-New-pass-phrase-2024"
        here, elsewhere = Client(), Client()
        assert log_in(here, email, PASSWORD)
        assert log_in(elsewhere, email, PASSWORD)
        response = here.post(
            "/accounts/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
        )
        assert response.status_code == 302
        assert here.get("/customers/").status_code == 200  # the session that changed it stays
        assert elsewhere.get("/customers/")["Location"].startswith("/accounts/login/")


def test_password_validators_are_djangos_four():
    names = [validator["NAME"].rsplit(".", 1)[1] for validator in django_settings.AUTH_PASSWORD_VALIDATORS]
    assert names == [
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    ]


@pytest.mark.parametrize(
    ("weak", "message"),
    [
        ("Xy7!q", "This password is too short. It must contain at least 8 characters."),
        ("password123", "This password is too common."),
        ("80417396251", "This password is entirely numeric."),
        ("sales_agent@alpha", "The password is too similar to the email."),
    ],
)
def test_weak_passwords_are_refused(staff, weak, message):
    member = staff[Role.SALES_AGENT]
    client = client_for(member)
    response = client.post(
        "/accounts/password/", {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak}
    )
    assert response.status_code == 200
    assert message in response.context["form"].errors["new_password2"]
    member.refresh_from_db()
    assert member.check_password(PASSWORD)


# --- headers and cookies under production settings ------------------------------------------------

HEADER_SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "SECURE_CROSS_ORIGIN_OPENER_POLICY",
    "SECURE_PROXY_SSL_HEADER",
    "X_FRAME_OPTIONS",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SAMESITE",
    "ALLOWED_HOSTS",
    "DEBUG",
]
HOST = "insights.example.com"


@pytest.fixture
def production(settings):
    """This process with the header and cookie settings a production environment gives
    (partnerinsights/settings.py read in a subprocess with PRODUCTION_ENV, no DEBUG)."""
    script = (
        "import json, django; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{name: getattr(settings, name) for name in {HEADER_SETTINGS!r}}}))"
    )
    env = {**PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "partnerinsights.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    values = json.loads(result.stdout)
    assert values["DEBUG"] is False
    for name, value in values.items():
        setattr(settings, name, tuple(value) if name == "SECURE_PROXY_SSL_HEADER" else value)
    return values


def test_plain_http_is_redirected_to_https(production):
    response = Client().get("/accounts/login/", HTTP_HOST=HOST)
    assert (response.status_code, response["Location"]) == (301, f"https://{HOST}/accounts/login/")


SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def test_responses_carry_the_security_headers_and_safe_cookies(production, staff):
    client = Client(HTTP_HOST=HOST)
    credentials = {"username": staff[Role.SALES_AGENT].email, "password": PASSWORD}
    response = client.post("/accounts/login/", credentials, secure=True)
    assert response.status_code == 302
    cookies = {name: response.cookies[name] for name in ("sessionid", "csrftoken")}
    assert {name: (c["secure"], c["httponly"], c["samesite"]) for name, c in cookies.items()} == {
        "sessionid": (True, True, "Lax"),
        "csrftoken": (True, True, "Lax"),
    }
    page = client.get("/customers/", secure=True)
    assert page.status_code == 200
    assert {name: page.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
