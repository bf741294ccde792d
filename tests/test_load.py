"""The load test's short bounded form (bench/load.py is the full one): gunicorn as in production,
20 concurrent users (each signs in and walks once, then 10 seconds of load), on a small demo
dataset of two partners. Asserts no error, no foreign data and flat worker memory, never a timing
(those are in docs/security-and-reliability.md)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from bench.load import MARKER, Client, check, demo_logins, gunicorn, mark_second_partner, run_load
from imports.management.commands.generate_demo_data import DEMO_PASSWORD, NORTHWIND_ADMIN

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),  # gunicorn reads committed data
    pytest.mark.skipif(connection.vendor != "postgresql", reason="gunicorn needs a database it can share"),
]

USERS, SECONDS = 20, 10
MEMORY_GROWTH_MIB = 20  # total over 3 workers, second half's peak against the first half's


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_twenty_users_get_no_error_no_foreign_data_and_flat_worker_memory(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the server's hasher
    call_command("generate_demo_data", "--customers", "8", "--users", "240", "--days", "35", "--metrics-days", "1")
    assert mark_second_partner() == 12

    with gunicorn(database_url()) as server:
        northwind = Client(server)
        assert northwind.login(NORTHWIND_ADMIN, DEMO_PASSWORD).status == 302
        listing = northwind.get("/customers/")
        assert MARKER in listing.text  # the marker a leak would show is served (to its own partner)
        assert "marker" in check("customers", listing)  # and would count as an error in the load
        result = run_load(server, demo_logins(), users=USERS, duration=SECONDS)
        assert not server.process.poll()  # still serving

    assert result["errors"] == 0, result["error_samples"]
    assert all(row["requests"] > 0 for row in result["endpoints"].values()), result["endpoints"]
    assert result["endpoints"]["login"]["requests"] >= USERS
    assert result["threads_still_running"] == 0
    assert not result["workers_replaced"]  # no worker killed by a timeout or a crash
    assert result["memory"]["workers"] == 3
    assert result["memory"]["growth_mib"] < MEMORY_GROWTH_MIB, result["memory"]
