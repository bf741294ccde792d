"""Property-based tests of the API against its own OpenAPI schema (schemathesis, in-process).

Schemathesis loads `/api/schema/` from the WSGI application and sends generated requests to it
without any network, authenticated with a token of a partner that has data; every response must
be a documented status with a body matching the schema, and never a server error.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import TestCase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts import services as account_services
from accounts.roles import Role
from collection.models import PullRun
from imports.models import ImportRun
from metrics.models import RecomputeRun
from tests.conftest import SNAPSHOT_DATE
from tests.test_api import BAD, GOOD, _zip, alpha  # noqa: F401 (alpha: a fixture, partner A with snapshots)

EXAMPLES_PER_OPERATION = 25
# OpenAPI 3.0 cannot say that `as_of` excludes `from`/`to`, or that `from` <= `to`: such requests
# are schema-valid and rightly refused with a documented 400, which this check would report.
EXCLUDED_CHECKS = [positive_data_acceptance]


@pytest.fixture
def token(staff, alpha, bravo) -> str:
    """A Global admin's token of partner A (which has data); partner B exists beside it."""
    return account_services.api_token_create(user=staff[Role.GLOBAL_ADMIN], name="schemathesis")[1]


@pytest.fixture
def existing_ids(alpha, partner) -> dict[str, dict[str, int]]:
    """Path parameters naming partner A's real objects, so that 200 responses are checked too."""
    run = ImportRun.objects.create(partner=partner, origin=ImportRun.Origin.COMMAND, source_name="x", status="failed")
    customer = {"customer_id": alpha["customer"].pk}
    return {
        "/api/customers/{id}/": {"id": alpha["customer"].pk},
        "/api/customers/{customer_id}/subscriptions/": customer,
        "/api/customers/{customer_id}/metrics/sku/": customer,
        "/api/customers/{customer_id}/metrics/workload/": customer,
        "/api/customers/{customer_id}/metrics/family/": customer,
        "/api/customers/{customer_id}/inactive-users/": customer,
        "/api/imports/{id}/": {"id": run.pk},
        "/api/imports/{id}/restart/": {"id": run.pk},
        "/api/recompute-runs/{id}/": {"id": RecomputeRun.objects.get(partner=partner, as_of=SNAPSHOT_DATE).pk},
        "/api/sync/pulls/{id}/": {"id": PullRun.objects.create(partner=partner, trigger="manual").pk},
    }


def test_every_response_matches_the_schema_and_none_is_a_server_error(settings_override, token, existing_ids):
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 18
    for operation in operations:
        strategy = st.one_of(operation.as_strategy(), *_realistic(operation, existing_ids))

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=auth, excluded_checks=EXCLUDED_CHECKS)

        # Each request's commit queues its import, run here (eagerly) once the examples are sent.
        with TestCase.captureOnCommitCallbacks(execute=True):
            check()
    # The import operation was reached with both outcomes, not only refused as malformed.
    assert set(ImportRun.objects.filter(origin=ImportRun.Origin.API).values_list("status", flat=True)) == {
        ImportRun.Status.SUCCEEDED,
        ImportRun.Status.FAILED,
    }


def _realistic(operation: schemathesis.APIOperation, existing_ids: dict) -> list:
    """Cases that reach the successful answers random data rarely reaches: partner A's real
    ids, and .zip imports that succeed or are refused (both accepted first: 202)."""
    if operation.path in existing_ids:
        return [operation.as_strategy(path_parameters=existing_ids[operation.path])]
    if operation.method.upper() == "POST" and operation.path == "/api/imports/":
        return [operation.as_strategy(body={"file": _zip(files).getvalue()}) for files in (GOOD, BAD)]
    return []


@pytest.fixture
def settings_override(settings):
    # Schemathesis' WSGI client sends `Host: localhost`.
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    # As Django's test client does: the test's transaction is open (autocommit off), which
    # close_old_connections would take for a broken connection and close after each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
