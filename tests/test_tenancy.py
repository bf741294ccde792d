"""Tenancy: nothing of partner B is visible to partner A, by any URL (SPEC §4).

The route table below must name every URL pattern of the project: a new route that is not in
it fails `test_every_route_is_covered`, so nobody has to remember to add its tenancy test.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django_scopes import ScopeError, scope

from accounts.models import ApiToken, Invitation
from accounts.roles import Role
from customers.models import Customer, Product
from metrics.models import SkuSetting
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
    "imports:restart": lambda b: {"run_id": b["run"].pk},
    "metrics:status": None,
    "metrics:recompute": None,
    "staff:list": None,
    "staff:invite": None,
    "staff:edit": lambda b: {"staff_id": b["staff"].pk},
    "staff:resend": lambda b: {"staff_id": b["staff"].pk},
    "staff:unlock": lambda b: {"staff_id": b["staff"].pk},
    "staff:invitation_resend": lambda b: {"invitation_id": b["invitation"].pk},
    "staff:invitation_cancel": lambda b: {"invitation_id": b["invitation"].pk},
    "login": None,
    "logout": None,
    "password_change": None,
    "password_change_done": None,
    "password_reset": None,
    "password_reset_done": None,
    "password_reset_confirm": None,  # a signed token, not a tenant object
    "password_reset_complete": None,
    "invitation_accept": None,  # a signed token, not a tenant object
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
    "api:import-restart": lambda b: {"pk": b["run"].pk},
    "api:recompute-run-list": None,
    "api:recompute-run-detail": lambda b: {"pk": b["recompute"].pk},
    "settings": None,
    "report_schedule": None,
    "collection:connection": None,  # the signed-in partner's own connection: no id in the URL
    "collection:connection_test": None,
    "collection:connection_remove": None,
    "collection:status": None,
    "collection:pull": None,
    "api:sync-customer-list": None,
    "api:sync-pull-list": None,
    "api:sync-pull-detail": lambda b: {"pk": b["pull"].pk},
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
    metrics_recompute(partner=partner, as_of=YESTERDAY, trigger="nightly")
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
    invitation = Invitation.objects.get(pk=bravo["invitation"].pk)
    assert (invitation.cancelled_at, invitation.link_version) == (None, 1)
    assert mail.outbox == []


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


# --- another partner's ids in query strings, export filters and form fields ------------------------

BRAVO_ONLY_SKU = "BRAVOSUITE"  # the SKU itself carries no marker: a refusal may echo what was asked


@pytest.fixture
def bravo_only(bravo, other_partner) -> dict:
    """A SKU of partner B's own catalog, on B's customer, and a snapshot date only B has."""
    product = Product.objects.create(
        partner=other_partner, sku=BRAVO_ONLY_SKU, name=f"{MARKER}Suite", family="office365"
    )
    factories.SubscriptionFactory(customer=bravo["customer"], product=product, external_id="S-BRAVO")
    day = YESTERDAY - dt.timedelta(days=3)
    metrics_recompute(partner=other_partner, as_of=day, trigger="nightly")
    return {"sku": BRAVO_ONLY_SKU, "day": day.isoformat(), "customer": bravo["customer"].pk}


# Each query names one of B's things ({sku}, {day}, {customer}); the same query naming a thing that
# exists nowhere (NOWHERE: a SKU, a day next to B's without any snapshot, a customer id) must
# answer the same. {own} is A's customer.
FOREIGN_QUERIES = [
    ("/analytics/export.csv?sku={sku}", 400),
    ("/analytics/export.csv?grain=family&sku={sku}", 400),
    ("/analytics/?sku={sku}", 200),
    ("/analytics/export.csv?as_of={day}", 404),
    ("/analytics/inactive.csv?as_of={day}", 404),
    ("/customers/{own}/export.csv?as_of={day}", 404),
    ("/customers/{own}/inactive.csv?as_of={day}", 404),
    ("/customers/{own}/insights/?as_of={day}", 200),
    ("/analytics/?as_of={day}", 200),
    ("/analytics/export.csv?customer={customer}&customer_id={customer}", 200),
    ("/api/customers/{own}/metrics/sku/?sku={sku}", 200),
    ("/api/customers/{own}/metrics/sku/?as_of={day}", 404),
    ("/api/portfolio/?from={day}&to={day}", 200),
    ("/api/inactive-users/?as_of={day}", 404),
]
NOWHERE = {"sku": "NOSUCHSKU", "day": (YESTERDAY - dt.timedelta(days=4)).isoformat(), "customer": 999999}


@pytest.mark.parametrize(("query", "status"), FOREIGN_QUERIES)
def test_other_partners_ids_in_query_strings_read_as_missing(alpha_admin, bravo_only, partner, query, status):
    own = Customer.objects.get(partner=partner).pk
    theirs = alpha_admin.get(query.format(own=own, **bravo_only))
    missing = alpha_admin.get(query.format(own=own, **NOWHERE))
    assert (theirs.status_code, missing.status_code) == (status, status)
    body = body_of(theirs)
    assert MARKER not in body
    if not theirs["Content-Type"].startswith("text/html"):  # pages carry a fresh CSRF token each time
        # The same answer, but for the echo of what was asked.
        echoed = body.replace(BRAVO_ONLY_SKU, NOWHERE["sku"]).replace(bravo_only["day"], NOWHERE["day"])
        assert echoed == body_of(missing)


def test_settings_naming_another_partners_sku_store_nothing_for_it(alpha_admin, bravo_only, other_partner):
    theirs = list(SkuSetting.objects.filter(partner=other_partner).values_list("sku", "monthly_price", "excluded"))
    form = {
        **factories.SETTINGS_FORM,
        "sku-TOTAL_FORMS": "1",
        "sku-INITIAL_FORMS": "0",
        "sku-0-sku": BRAVO_ONLY_SKU,
        "sku-0-monthly_price": "1.00",
        "sku-0-excluded": "on",
    }
    response = alpha_admin.post("/settings/", form)
    assert response.status_code == 302
    assert not SkuSetting.objects.filter(sku=BRAVO_ONLY_SKU).exists()
    assert (
        list(SkuSetting.objects.filter(partner=other_partner).values_list("sku", "monthly_price", "excluded")) == theirs
    )
    assert MARKER not in alpha_admin.get("/settings/").content.decode()


def test_inviting_another_partners_staff_takes_nothing_over(alpha_admin, bravo, django_capture_on_commit_callbacks):
    """The invite form answers for another partner's address exactly as for a new one (a pending
    invitation); that address's owner is told, in a plain email naming no partner, that it
    cannot be accepted; their account is untouched."""
    member = bravo["staff"]

    def invite(email: str) -> tuple:
        """What the inviter sees: the redirects, the message and the address's row on the staff page."""
        with django_capture_on_commit_callbacks(execute=True):
            response = alpha_admin.post("/staff/invite/", {"email": email, "role": "global_admin"}, follow=True)
        html = response.content.decode()
        for varying in (r"\d{4}-\d\d-\d\d \d\d:\d\d", r"invitations/\d+/", r'name="csrfmiddlewaretoken" value="\w+"'):
            html = re.sub(varying, "VARIES", html)
        message = re.search(r'<ul class="messages">.*?</ul>', html, re.S).group(0)
        row = re.search(rf"<tr>\s*<td>{re.escape(email.lower())}</td>.*?</tr>", html, re.S).group(0)
        return response.redirect_chain, message.replace(email.lower(), "ADDRESS"), row.replace(email.lower(), "ADDRESS")

    assert invite(member.email.upper()) == invite("nobody.yet@elsewhere.example")
    member.refresh_from_db()
    assert (member.partner_id, member.role, member.is_active) == (bravo["customer"].partner_id, "sales_agent", True)
    notice, invitation = mail.outbox
    assert (notice.to, invitation.to) == ([member.email], ["nobody.yet@elsewhere.example"])
    assert "already has a Partner Insights account" in notice.body
    for text in (notice.subject, notice.body):
        assert "Alpha" not in text
        assert MARKER not in text
        assert "/accounts/" not in text
    assert "/accounts/invitation/" in invitation.body
