"""The upgrade to the layered apps keeps every row: tests/upgrade.py, in a process of its own, migrates
an empty database to the old leaves, fills it, upgrades it and compares — on a fresh SQLite file
always, and on a fresh PostgreSQL database of the run's server when the run has one (CI).

The driver runs in a subprocess because it migrates a database of its own from nothing, which the
test session's database (already migrated to today, shared by the other tests) cannot be.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.processes import ROOT

# The tables the driver fills (the others of the dump may be empty, e.g. staff groups).
FILLED = (
    "accounts_partner",
    "accounts_staffuser",
    "accounts_apitoken",
    "auth_permission",
    "django_content_type",
    "customers_product",
    "customers_productworkload",
    "customers_customer",
    "customers_subscription",
    "customers_enduser",
    "customers_licenseassignment",
    "customers_activity",
    "customers_supportrequest",
    "customers_importrun",
    "metrics_recomputerun",
    "metrics_skusnapshot",
    "metrics_workloadsnapshot",
    "metrics_familysnapshot",
    "metrics_portfoliosnapshot",
    "metrics_inactivesnapshot",
    "metrics_insightsettings",
    "metrics_skusetting",
    "exports_reportschedule",
    "exports_reportschedule_recipients",
    "exports_reportdelivery",
)
SERVER_URL = os.environ.get("DATABASE_URL", "")


def upgrade(database_url: str) -> dict:
    """Runs the driver on `database_url`; returns its report (whatever its exit code: the
    assertions below say what differed)."""
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": database_url}
    env["DJANGO_SETTINGS_MODULE"] = "partnerinsights.settings"
    done = subprocess.run(
        [sys.executable, "-m", "tests.upgrade", database_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.startswith("{"), f"the driver failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    assert (done.returncode == 0) == report["ok"], done.stderr
    return report


def assert_intact(report: dict) -> None:
    changed = {name: table for name, table in report["tables"].items() if not table["equal"]}
    assert not changed, f"rows changed by the upgrade: {json.dumps(changed, indent=2)}"
    empty = [name for name in FILLED if not report["tables"].get(name, {}).get("rows_before")]
    assert not empty, f"tables the driver should have filled are empty: {empty}"
    for name in FILLED:
        table = report["tables"][name]
        assert table["rows_after"] == table["rows_before"], name
    assert report["rows_before"] == report["rows_after"] > 300
    content_type = report["content_type_importrun"]
    assert content_type["app_label_before"] == ["customers"]
    assert content_type["app_label_after"] == ["imports"]
    assert content_type["id_after"] == content_type["id_before"]
    assert report["today_models"]["problems"] == []
    assert report["today_models"]["import_runs"] == report["tables"]["customers_importrun"]["rows_before"]
    assert report["new_checks"]["missing"] == {}
    assert report["ok"]


def test_upgrade_keeps_every_row_on_sqlite(tmp_path: Path):
    assert_intact(upgrade(f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"))


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the server of the run's DATABASE_URL; dropped afterwards."""
    name = f"pi_upgrade_{secrets.token_hex(6)}"
    server = urlsplit(SERVER_URL)
    with psycopg.connect(server._replace(path="/postgres").geturl(), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server._replace(path=f"/{name}").geturl()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgresql
@pytest.mark.skipif(not SERVER_URL.startswith("postgres"), reason="needs the PostgreSQL server of DATABASE_URL (CI)")
def test_upgrade_keeps_every_row_on_postgresql(fresh_postgres_database: str):
    assert_intact(upgrade(fresh_postgres_database))
