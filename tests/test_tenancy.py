"""Tenancy: nothing of partner B is visible to partner A, by any URL (SPEC §4).

The route table below must name every URL pattern of the project: a new route that is not in
it fails `test_every_route_is_covered`, so nobody has to remember to add its tenancy test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django_scopes import ScopeError, scope

from accounts.models import ApiToken
from accounts.roles import Role
from customers.models import Customer
from metrics.services import metrics_recompute
from tests import factories
from tests.conftest import MARKER, client_for, token_client_for
from tests.conftest import SNAPSHOT_DATE as YESTERDAY

# Route name -> how to make partner B's object for each id in its path (None: no ids).
ObjectMaker = Callable[[dict], dict[str, int]]
ROUTES: dict[str, ObjectMaker | None] = {
    "customers:list": None,
    "customers:insights": lambda b: {"customer_id": b["customer"].pk},
    "customers:subscriptions": lambda b: {"customer_id": b["customer"].pk},
    "customers:export": lambda b: {"customer_id": b["customer"].pk},
    "customers:inactive_export": lambda b: {"customer_id": b["customer"].pk},
    "analytics": None,
    "analytics_export": None,
    "analytics_inactive_export": None,
    "imports:index": None,
    "imports:detail": lambda b: {"run_id": b["run"].pk},
    "metrics:status": None,
    "metrics:recompute": None,
    "staff:list": None,
    "staff:invite": None,
    "staff:edit": lambda b: {"staff_id": b["staff"].pk},
    "login": None,
    "logout": None,
    "password_change": None,
    "password_change_done": None,
    "password_reset_confirm": None,  # a signed token, not a tenant object
    "api_tokens": None,
    "api_token_revoke": lambda b: {"token_id": b["token"].pk},
    "api:schema": None,
    "api:customer-list": None,
    "api:customer-detail": lambda b: {"pk": b["customer"].pk},
    "api:customer-subscription-list": lambda b: {"customer_id": b["customer"].pk},
    "api:customer-metrics-sku": lambda b: {"customer_id": b["customer"].pk},
    "api:customer-metrics-workload": lambda b: {"customer_id": b["customer"].pk},
    "api:customer-metrics-family": lambda b: {"customer_id": b["customer"].pk},
    "api:portfolio": None,
    "api:inactive-user-list": None,
    "api:customer-inactive-user-list": lambda b: {"customer_id": b["customer"].pk},
    "api:import-list": None,
    "api:import-detail": lambda b: {"pk": b["run"].pk},
    "api:recompute-run-list": None,
    "api:recompute-run-detail": lambda b: {"pk": b["recompute"].pk},
    "settings": None,
    "report_schedule": None,
    "favicon": None,
}
# Django's admin is for platform operators only and lives outside the tenant scope.
EXCLUDED_NAMESPACES = {"admin"}


def _route_names(patterns: list | None = None, namespace: str = "") -> set[str]:
    """Every named URL pattern of the project, with its namespace, walking the resolver."""
    names = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace not in EXCLUDED_NAMESPACES:
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                names |= _route_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(f"{namespace}{entry.name}")
    return names


def test_every_route_is_covered():
    assert _route_names() - set(ROUTES) == set(), "add the new routes to ROUTES with their object makers"


@pytest.fixture
def alpha_admin(partner, staff):
    customer = factories.CustomerFactory(partner=partner, external_id="C1", name="Alpha Customer")
    subscription = factories.SubscriptionFactory(customer=customer, external_id="S1")
    factories.AssignmentFactory(
        user=factories.EndUserFactory(customer=customer, external_id="U1"), subscription=subscription
    )
    metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="test")
    return client_for(staff[Role.GLOBAL_ADMIN])


@pytest.fixture
def alpha_client(request, alpha_admin, staff) -> Client:
    """Partner A's Global admin, signed in (`auth` "session") or with an API token ("token")."""
    return (
        alpha_admin if request.node.callspec.params["auth"] == "session" else token_client_for(staff[Role.GLOBAL_ADMIN])
    )


def _with_auth(targets: list[str], is_api: Callable[[str], bool]) -> list[tuple[str, str]]:
    """Each target signed in; API targets with a token as well (tokens do not sign in to pages)."""
    return [
        (target, auth) for target in targets for auth in ("session", "token") if auth == "session" or is_api(target)
    ]


def _expected_status(url: str, method: str) -> int:
    """404; but a method the API route does not map is refused first (405), before any lookup."""
    actions = getattr(resolve(url).func, "actions", None)  # DRF viewsets: method -> action
    return 405 if actions is not None and method not in actions else 404


ROUTES_WITH_IDS = sorted(name for name, maker in ROUTES.items() if maker)


@pytest.mark.parametrize(("name", "auth"), _with_auth(ROUTES_WITH_IDS, lambda name: name.startswith("api:")))
@pytest.mark.parametrize("method", ["get", "post"])
def test_other_partners_objects_are_404(alpha_client, bravo, name, auth, method):
    url = reverse(name, kwargs=ROUTES[name](bravo))
    response = getattr(alpha_client, method)(url, {"role": "sales_agent", "is_active": ""})
    assert response.status_code == _expected_status(url, method)
    assert MARKER not in response.content.decode()
    bravo["staff"].refresh_from_db()
    assert bravo["staff"].is_active  # the POST changed nothing
    assert ApiToken.objects.get(pk=bravo["token"].pk).revoked_at is None


PAGE_LISTS = [
    "/customers/",
    "/customers/?q=ZZ",
    "/customers/?q=C1",
    "/customers/?kind=low_adoption",
    "/customers/?usage=0-20&sort=-sold",
    "/imports/",
    "/staff/",
    "/status/",
    "/settings/",
    "/settings/reports/",
    "/analytics/",
    "/analytics/?kind=low_adoption&family=office365",
    "/analytics/?sku=ENTERPRISEPACK&usage_min=0",
    "/analytics/export.csv",
    "/analytics/export.csv?grain=workload",
    "/analytics/export.csv?grain=family&usage_min=0",
    "/analytics/export.csv?sku=ENTERPRISEPACK",
    "/analytics/inactive.csv?days=180",
    "insights",
    "/accounts/tokens/",
]
API_LISTS = [
    "/api/customers/",
    "/api/customers/?search=ZZ",
    "/api/customers/?search=C1",
    "/api/portfolio/",
    "/api/portfolio/?from=2000-01-01&to=2100-12-31",
    "/api/imports/",
    "/api/recompute-runs/",
    "/api/inactive-users/",
    "/api/inactive-users/?days=180",
]


@pytest.mark.parametrize(("path", "auth"), _with_auth(PAGE_LISTS + API_LISTS, lambda path: path.startswith("/api/")))
def test_lists_never_show_other_partners_rows(alpha_client, bravo, partner, path, auth):
    if path == "insights":  # partner A's own customer, whose external id B uses too
        path = f"/customers/{Customer.objects.get(partner=partner).pk}/insights/?inactive_days=30"
    response = alpha_client.get(path)
    assert response.status_code == 200
    assert MARKER not in body_of(response)
    if path.startswith("/api/") and "search=ZZ" in path:
        assert response.json()["count"] == 0


def body_of(response) -> str:
    return (b"".join(response.streaming_content) if response.streaming else response.content).decode()


def test_exports_hold_only_own_rows(alpha_admin, bravo):
    for grain in ("sku", "workload", "family"):
        lines = body_of(alpha_admin.get(f"/analytics/export.csv?grain={grain}")).splitlines()
        assert [line.split(",")[1:3] for line in lines[1:]] == [["C1", "Alpha Customer"]] * (len(lines) - 1)
        assert len(lines) > 1


def test_customer_list_counts_only_own_customers(alpha_admin, bravo):
    response = alpha_admin.get("/customers/")
    assert response.context["page"].paginator.count == 1
    assert [c.name for c in response.context["page"].object_list] == ["Alpha Customer"]


def test_same_external_ids_under_two_partners_are_separate_records(alpha_admin, bravo, partner):
    alpha = Customer.objects.get(partner=partner, external_id="C1")
    assert alpha.pk != bravo["customer"].pk
    response = alpha_admin.get(f"/customers/{alpha.pk}/subscriptions/")
    assert response.status_code == 200
    assert [s.pk for s in response.context["subscriptions"]] != [bravo["customer"].subscriptions.get().pk]


def test_scoped_managers_refuse_queries_outside_a_partner_scope(bravo):
    with scope(), pytest.raises(ScopeError):
        list(Customer.objects.all())


def test_scope_of_one_partner_never_returns_anothers_rows(partner, bravo):
    factories.CustomerFactory(partner=partner, external_id="C1", name="Alpha Customer")
    with scope(partner=partner):
        assert [c.name for c in Customer.objects.all()] == ["Alpha Customer"]


def test_database_refuses_an_assignment_across_customers(partner):
    one = factories.CustomerFactory(partner=partner)
    two = factories.CustomerFactory(partner=partner)
    user = factories.EndUserFactory(customer=one)
    foreign_subscription = factories.SubscriptionFactory(customer=two)

    def assign_across_customers() -> None:
        factories.AssignmentFactory(user=user, subscription=foreign_subscription, assigned_on=dt.date(2024, 1, 1))
        connection.check_constraints()  # PostgreSQL defers the composite keys to the commit

    with pytest.raises(IntegrityError), transaction.atomic():
        assign_across_customers()
