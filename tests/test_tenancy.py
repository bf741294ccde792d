"""Tenancy: nothing of partner B is visible to partner A, by any URL (SPEC §4).

The route table below must name every URL pattern of the project: a new route that is not in
it fails `test_every_route_is_covered`, so nobody has to remember to add its tenancy test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_scopes import ScopeError, scope

from accounts.roles import Role
from customers.models import Customer, ImportRun
from metrics.models import SkuSetting
from metrics.services import metrics_recompute, yesterday
from tests import factories
from tests.conftest import client_for, staff_for

MARKER = "ZZ-B-"
YESTERDAY = yesterday()

# Route name -> how to make partner B's object for each id in its path (None: no ids).
ObjectMaker = Callable[[dict], dict[str, int]]
ROUTES: dict[str, ObjectMaker | None] = {
    "customers:list": None,
    "customers:insights": lambda b: {"customer_id": b["customer"].pk},
    "customers:subscriptions": lambda b: {"customer_id": b["customer"].pk},
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
    "api-schema": None,
    "settings": None,
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
def bravo(other_partner) -> dict:
    """Partner B's data, carrying the marker and the same external ids as partner A's."""
    customer = factories.CustomerFactory(partner=other_partner, external_id="C1", name=f"{MARKER}Customer")
    subscription = factories.SubscriptionFactory(
        customer=customer, external_id="S1", quantity=50, end_date=YESTERDAY + dt.timedelta(days=10)
    )
    user = factories.EndUserFactory(
        customer=customer, external_id="U1", upn=f"{MARKER}u1@c1.example", display_name=f"{MARKER}User"
    )
    factories.AssignmentFactory(user=user, subscription=subscription)
    SkuSetting.objects.create(partner=other_partner, sku="ENTERPRISEPACK", monthly_price=99, excluded=False)
    metrics_recompute(partner=other_partner, as_of=YESTERDAY, trigger="test")
    run = ImportRun.objects.create(
        partner=other_partner, origin=ImportRun.Origin.COMMAND, source_name=f"{MARKER}import", status="succeeded"
    )
    staff = staff_for(other_partner, Role.SALES_AGENT)
    return {"customer": customer, "run": run, "staff": staff}


@pytest.fixture
def alpha_admin(partner, staff):
    customer = factories.CustomerFactory(partner=partner, external_id="C1", name="Alpha Customer")
    subscription = factories.SubscriptionFactory(customer=customer, external_id="S1")
    factories.AssignmentFactory(
        user=factories.EndUserFactory(customer=customer, external_id="U1"), subscription=subscription
    )
    metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="test")
    return client_for(staff[Role.GLOBAL_ADMIN])


@pytest.mark.parametrize("name", sorted(name for name, maker in ROUTES.items() if maker))
@pytest.mark.parametrize("method", ["get", "post"])
def test_other_partners_objects_are_404(alpha_admin, bravo, name, method):
    url = reverse(name, kwargs=ROUTES[name](bravo))
    response = getattr(alpha_admin, method)(url, {"role": "sales_agent", "is_active": ""})
    assert response.status_code == 404
    assert MARKER not in response.content.decode()
    bravo["staff"].refresh_from_db()
    assert bravo["staff"].is_active  # the POST changed nothing


@pytest.mark.parametrize(
    "path",
    [
        "/customers/",
        "/customers/?q=ZZ",
        "/customers/?q=C1",
        "/customers/?kind=low_adoption",
        "/customers/?usage=0-20&sort=-sold",
        "/imports/",
        "/staff/",
        "/status/",
        "/settings/",
        "insights",
    ],
)
def test_lists_never_show_other_partners_rows(alpha_admin, bravo, partner, path):
    if path == "insights":  # partner A's own customer, whose external id B uses too
        path = f"/customers/{Customer.objects.get(partner=partner).pk}/insights/?inactive_days=30"
    response = alpha_admin.get(path)
    assert response.status_code == 200
    assert MARKER not in response.content.decode()


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
