"""Accounts, sessions and headers (shared/RELIABILITY.md): login throttling, CSP, CSRF."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.roles import Role
from tests.conftest import PASSWORD, client_for, log_in
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
        ("/accounts/logout/", {}),
    ],
)
def test_csrf_is_enforced_on_unsafe_requests(staff, path, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff[Role.GLOBAL_ADMIN])
    assert client.post(path, data).status_code == 403
    assert client_for(staff[Role.GLOBAL_ADMIN]).get("/customers/").status_code == 200
