"""API hygiene: throttling per user on the shared cache (a real Redis), every metric described in
the schema, dates without a snapshot answering 404 as the CSV downloads do, and
`Cache-Control: private, no-store` on whatever holds a partner's data."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time

import pytest
import redis
from django.core.cache import cache
from django.test import Client

from accounts.roles import Role
from core.api import PartnerRateThrottle
from metrics.models import FamilySnapshot, PortfolioSnapshot, SkuSnapshot, WorkloadSnapshot
from tests import factories
from tests.conftest import client_for, token_client_for
from tests.processes import ROOT, private_redis
from tests.test_api import EARLIER, D, alpha  # noqa: F401 (alpha: partner A with snapshots on EARLIER and D)

GA, SA = Role.GLOBAL_ADMIN, Role.SALES_AGENT
NO_SNAPSHOT = D - dt.timedelta(days=5)


# --- throttling ------------------------------------------------------------------------------------


@pytest.fixture
def redis_cache(settings):
    """The shared cache on a Redis server of the test's own, with small rates to reach."""
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    with private_redis() as url:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "pi-cache",
                "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
            }
        }
        rates = {"read": "3/minute", "upload": "2/minute", "schema": "2/minute"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
        yield url


def test_a_users_reads_are_counted_across_their_clients_in_redis_and_reset(redis_cache, staff, alpha, monkeypatch):
    session, token = client_for(staff[GA]), token_client_for(staff[GA])
    answers = [client.get("/api/customers/").status_code for client in (session, token, session)]
    assert answers == [200, 200, 200]

    refused = token.get("/api/portfolio/")  # another read endpoint: the same budget
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"]
    assert session.get("/api/customers/").status_code == 429

    # The counter is in Redis (every web process sees it), under the user's id.
    keys = redis.Redis.from_url(redis_cache).keys("pi-cache:*")
    assert [key.decode().split(":")[-1] for key in keys] == [f"throttle_read_{staff[GA].pk}"]

    # A colleague, and another kind of endpoint of the same user, have budgets of their own.
    assert token_client_for(staff[SA]).get("/api/customers/").status_code == 200
    assert session.get("/api/schema/").status_code == 200

    # A minute later the window has moved on.
    later = time.time() + 61
    monkeypatch.setattr(PartnerRateThrottle, "timer", lambda self: later)
    assert token.get("/api/customers/").status_code == 200


def test_uploads_have_their_own_budget(redis_cache, staff, alpha):
    token = token_client_for(staff[GA])
    # Not a .zip: refused at once (400) but counted, as a flood of them would be.
    answers = [token.post("/api/imports/", {"file": b"x"}).status_code for _ in range(3)]
    assert answers == [400, 400, 429]
    assert token.get("/api/customers/").status_code == 200


def test_with_the_cache_down_the_api_still_answers(settings, staff, alpha):
    with private_redis() as gone:
        pass  # started and killed: nothing answers on its port any more
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": gone}}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"read": "1/minute"}}
    token = token_client_for(staff[GA])
    assert [token.get("/api/customers/").status_code for _ in range(3)] == [200, 200, 200]  # counted nowhere
    with pytest.raises(redis.ConnectionError):
        cache.get("anything")  # it really is down


def test_default_rates_are_read_from_the_environment():
    env = {"DEBUG": "true", "API_THROTTLE_READ": "7/second", "API_THROTTLE_UPLOAD": "8/day", "PATH": ""}
    code = "import json; from partnerinsights import settings; print(json.dumps(settings.REST_FRAMEWORK))"
    printed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    rates = json.loads(printed.stdout)["DEFAULT_THROTTLE_RATES"]
    assert rates == {"read": "7/second", "upload": "8/day", "schema": "60/hour"}


# --- the schema ------------------------------------------------------------------------------------


def test_every_snapshot_field_is_described_in_the_schema(staff, alpha):
    schema = token_client_for(staff[SA]).get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    snapshots = {name: component for name, component in components.items() if name.endswith("Snapshot")}
    assert set(snapshots) == {
        model.__name__ for model in (SkuSnapshot, WorkloadSnapshot, FamilySnapshot, PortfolioSnapshot)
    }
    undescribed = [
        f"{name}.{field}"
        for name, component in snapshots.items()
        for field, spec in component["properties"].items()
        if not spec.get("description", "").strip()
    ]
    assert undescribed == []
    sku = snapshots["SkuSnapshot"]["properties"]
    assert "own" in sku["own_sold_licenses"]["description"]
    assert "100 × assigned_licenses / sold_licenses" in sku["deployment_pct"]["description"]
    assert "28-day window" in sku["as_of"]["description"]


def test_every_operation_documents_429_with_retry_after(staff, alpha):
    schema = token_client_for(staff[SA]).get("/api/schema/?format=json").json()
    operations = [op for path in schema["paths"].values() for method, op in path.items() if method in {"get", "post"}]
    assert len(operations) >= 14  # every route of docs/api.md
    for operation in operations:
        assert "Retry-After" in operation["responses"]["429"]["headers"], operation["operationId"]


# --- dates without a snapshot ------------------------------------------------------------------------

DATED = [
    "/api/customers/{customer}/metrics/sku/",
    "/api/customers/{customer}/metrics/workload/",
    "/api/customers/{customer}/metrics/family/",
    "/api/portfolio/",
    "/api/inactive-users/",
    "/api/customers/{customer}/inactive-users/",
]


@pytest.mark.parametrize("path", DATED)
def test_a_date_without_a_snapshot_is_a_404_naming_the_latest_as_the_csv_says(staff, alpha, path):
    token, url = token_client_for(staff[GA]), path.format(customer=alpha["customer"].pk)
    missing = token.get(url, {"as_of": NO_SNAPSHOT})
    assert missing.status_code == 404
    expected = f"No snapshot for {NO_SNAPSHOT:%Y-%m-%d}; the latest date with one is {D:%Y-%m-%d}."
    assert missing.json() == {"detail": expected}
    csv = client_for(staff[GA]).get("/analytics/inactive.csv", {"as_of": NO_SNAPSHOT})
    assert (csv.status_code, csv.content.decode()) == (404, expected)
    assert token.get(url, {"as_of": EARLIER}).status_code == 200


@pytest.mark.parametrize("path", DATED[:4])
def test_a_range_may_hold_dates_without_a_snapshot(staff, alpha, path):
    token, url = token_client_for(staff[GA]), path.format(customer=alpha["customer"].pk)
    ranged = token.get(url, {"from": NO_SNAPSHOT, "to": D})
    assert ranged.status_code == 200
    assert {row["as_of"] for row in ranged.json()["results"]} == {EARLIER.isoformat(), D.isoformat()}
    assert token.get(url, {"from": NO_SNAPSHOT, "to": NO_SNAPSHOT}).json()["results"] == []


def test_a_date_asked_of_a_partner_without_any_snapshot_is_a_404(partner, staff):
    customer = factories.CustomerFactory(partner=partner)
    token = token_client_for(staff[SA])
    for url in (f"/api/customers/{customer.pk}/metrics/family/", "/api/inactive-users/"):
        answer = token.get(url, {"as_of": D})
        assert answer.status_code == 404
        assert answer.json()["detail"] == f"No snapshot for {D:%Y-%m-%d}; there is no metric snapshot yet."
        assert token.get(url).json()["results"] == []  # not asking for a date: nothing yet, not an error


# --- Cache-Control ---------------------------------------------------------------------------------


def directives(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


def test_partner_data_is_never_stored_by_a_cache(staff, alpha):
    session, token = client_for(staff[GA]), token_client_for(staff[SA])
    answers = {
        "page": session.get("/customers/"),
        "insights": session.get(f"/customers/{alpha['customer'].pk}/insights/"),
        "api": token.get("/api/portfolio/"),
        "api error": token.get("/api/customers/999999/"),
        "csv": session.get("/analytics/export.csv"),
    }
    for what, answer in answers.items():
        assert {"private", "no-store"} <= directives(answer), what
    assert answers["page"].status_code == answers["api"].status_code == answers["csv"].status_code == 200


def test_answers_to_anonymous_visitors_keep_their_own_headers(db):
    anonymous = Client()
    assert "private" not in directives(anonymous.get("/customers/"))  # a redirect to the login page
    assert "private" not in directives(anonymous.get("/api/customers/"))  # a 401
