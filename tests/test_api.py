"""The REST API: tokens, tenancy, roles, lists, exact numbers and the .zip import (SPEC §4, §5)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, TestCase
from django.urls import reverse

from accounts import services as account_services
from accounts.models import ApiToken, StaffUser
from accounts.roles import Role
from core.api import PartnerViewSet
from customers.models import Activity, Customer, Source, SubscriptionStatus
from imports.models import ImportRun
from metrics.models import FamilySnapshot, PortfolioSnapshot, RecomputeRun, SkuSnapshot, WorkloadSnapshot
from metrics.numbers import pct
from metrics.services import metrics_recompute
from tests import factories
from tests.conftest import MARKER, SNAPSHOT_DATE, client_for, committed, token_client_for

D = SNAPSHOT_DATE
EARLIER = D - dt.timedelta(days=1)
GA, UA, AA, SA = Role.GLOBAL_ADMIN, Role.USER_ADMIN, Role.ADMIN_AGENT, Role.SALES_AGENT


@pytest.fixture
def alpha(partner) -> dict:
    """Partner A: a customer with E3 (own and direct), Dynamics (own) and a grace E1 whose user is
    active but not entitled (both percentages undefined); an empty customer; two snapshot dates."""
    customer = factories.CustomerFactory(partner=partner, external_id="C1", name="Alpha Customer", domain="alpha.test")
    empty = factories.CustomerFactory(partner=partner, external_id="C2", name="Beta Corp", domain="beta.test")
    e3_own = factories.SubscriptionFactory(customer=customer, external_id="S1", quantity=10)
    factories.SubscriptionFactory(customer=customer, external_id="S2", quantity=5, source=Source.DIRECT)
    dynamics = factories.SubscriptionFactory(
        customer=customer, external_id="S3", quantity=4, product=factories.catalog_product("DYN365_ENTERPRISE_SALES")
    )
    grace = factories.SubscriptionFactory(
        customer=customer,
        external_id="S4",
        status=SubscriptionStatus.GRACE,
        product=factories.catalog_product("STANDARDPACK"),
    )
    users = [factories.EndUserFactory(customer=customer) for _ in range(4)]
    for user, subscription in zip(users, [e3_own, e3_own, dynamics, grace], strict=True):
        factories.AssignmentFactory(user=user, subscription=subscription)
    for user, workload in [(users[0], "exchange"), (users[2], "dynamics365"), (users[3], "teams")]:
        Activity.objects.create(partner=partner, user=user, workload=workload, activity_date=D)
    for day in (EARLIER, D):
        metrics_recompute(partner=partner, as_of=day, trigger="nightly")
    return {"customer": customer, "empty": empty, "users": users}


@pytest.fixture
def api(staff, alpha) -> Client:
    """Partner A's Global admin with an API token (no session)."""
    return token_client_for(staff[GA])


def _results(response) -> list[dict]:
    assert response.status_code == 200, response.content[:500]
    return response.json()["results"]


def _licenses(snapshot) -> dict:
    """The numbers every grain with licenses shows, straight from the stored snapshot."""
    return {
        "as_of": snapshot.as_of.isoformat(),
        "sold_licenses": snapshot.sold_licenses,
        "own_sold_licenses": snapshot.own_sold_licenses,
        "assigned_licenses": snapshot.assigned_licenses,
        "entitled_users": snapshot.entitled_users,
        "active_users": snapshot.active_users,
        "deployment_pct": pct(snapshot.assigned_licenses, snapshot.sold_licenses) or None,
        "usage_pct": pct(snapshot.active_users, snapshot.entitled_users) or None,
    }


# --- authentication and tokens -------------------------------------------------------------------


API_PATHS = [
    "/api/schema/",
    "/api/customers/",
    "/api/customers/1/",
    "/api/customers/1/subscriptions/",
    "/api/customers/1/metrics/sku/",
    "/api/customers/1/metrics/workload/",
    "/api/customers/1/metrics/family/",
    "/api/portfolio/",
    "/api/inactive-users/",
    "/api/customers/1/inactive-users/",
    "/api/imports/",
    "/api/imports/1/",
    "/api/recompute-runs/",
    "/api/recompute-runs/1/",
]


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("authorization", [None, "Bearer pi_not-a-token", "Bearer", "Basic dXNlcjpwYXNz"])
def test_anonymous_api_requests_are_401_never_a_redirect(db, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = Client(headers=headers).get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert b"detail" in response.content


def test_anonymous_import_post_is_401_and_imports_nothing(db):
    response = Client().post("/api/imports/", {"file": _zip({"customers.csv": "customer_id,name\nX,Y\n"})})
    assert response.status_code == 401
    assert ImportRun.objects.count() == 0


def test_operator_without_partner_gets_403(db):
    operator = StaffUser.objects.create_superuser("ops@platform.example", "x-Very-long-pass-1")
    assert client_for(operator).get("/api/customers/").status_code == 403


def test_token_page_shows_the_secret_once_and_stores_only_its_hash(staff):
    client = client_for(staff[SA])
    response = client.post("/accounts/tokens/", {"name": "Power BI"})
    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("pi_")
    assert len(secret) > 40
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.prefix) == (staff[SA], "Power BI", secret[:11])
    assert secret not in _every_stored_text()
    assert secret not in client.get("/accounts/tokens/").content.decode()  # shown once
    assert token.prefix in client.get("/accounts/tokens/").content.decode()  # recognisable


def _every_stored_text() -> str:
    """Every value of the token and session tables, as text."""
    with connection.cursor() as cursor:
        rows = []
        for table in (ApiToken._meta.db_table, "django_session"):
            cursor.execute(f"SELECT * FROM {table}")
            rows += cursor.fetchall()
    return repr(rows)


def test_header_links_to_the_token_page(staff):
    assert 'href="/accounts/tokens/"' in client_for(staff[SA]).get("/customers/").content.decode()


def test_a_token_acts_as_its_user_and_records_its_use(staff, alpha):
    _, secret = account_services.api_token_create(user=staff[SA], name="n")
    response = Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/customers/")
    assert response.status_code == 200
    assert ApiToken.objects.get().last_used_at is not None
    # A Sales agent may read, not import, with a token as in the browser.
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/imports/").status_code == 403


def test_revoked_token_is_401(staff, alpha):
    client = client_for(staff[GA])
    client.post("/accounts/tokens/", {"name": "ci"})
    token = ApiToken.objects.get()
    secret = client.post("/accounts/tokens/", {"name": "other"}).context["secret"]
    other = ApiToken.objects.get(name="other")
    bearer = Client(headers={"Authorization": f"Bearer {secret}"})
    assert bearer.get("/api/customers/").status_code == 200
    assert client.post(f"/accounts/tokens/{other.pk}/revoke/").status_code == 302
    assert bearer.get("/api/customers/").status_code == 401
    token.refresh_from_db()
    assert token.revoked_at is None  # only the one asked for


def test_revoking_is_post_only_and_only_ones_own_tokens(staff):
    token, _ = account_services.api_token_create(user=staff[GA], name="mine")
    assert client_for(staff[GA]).get(f"/accounts/tokens/{token.pk}/revoke/").status_code == 405
    assert client_for(staff[AA]).post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404  # a colleague's
    token.refresh_from_db()
    assert token.revoked_at is None


def test_deactivated_users_token_is_401(staff, alpha):
    _, secret = account_services.api_token_create(user=staff[AA], name="n")
    bearer = Client(headers={"Authorization": f"Bearer {secret}"})
    assert bearer.get("/api/customers/").status_code == 200
    client_for(staff[GA]).post(f"/staff/{staff[AA].pk}/", {"role": AA, "is_active": ""})
    assert bearer.get("/api/customers/").status_code == 401


def test_a_token_follows_its_users_partner_not_the_session(staff, alpha, bravo):
    """Token authentication happens inside the view, after the middleware scoped the session's
    partner: the token's user decides the partner."""
    _, secret = account_services.api_token_create(user=bravo["staff"], name="b")
    client = client_for(staff[GA])
    client.defaults.update(Client(headers={"Authorization": f"Bearer {secret}"}).defaults)
    names = [row["name"] for row in _results(client.get("/api/customers/"))]
    assert names == [f"{MARKER}Customer"]


def test_subclasses_cannot_bypass_the_scoped_queryset():
    for sealed in ["get_queryset", "get_object", "initial", "dispatch", "permission_classes"]:
        with pytest.raises(TypeError, match="may not override"):
            type("Leaky", (PartnerViewSet,), {sealed: lambda self: None})


# --- lists, filters, ordering, pagination --------------------------------------------------------


def test_customer_list_paginates_searches_and_orders(api, alpha, bravo):
    body = api.get("/api/customers/?page_size=1").json()
    assert (body["count"], len(body["results"]), body["previous"]) == (2, 1, None)
    assert body["results"][0] == {
        "id": alpha["customer"].pk,
        "external_id": "C1",
        "name": "Alpha Customer",
        "domain": "alpha.test",
        "user_count": 4,
        "own_subscription_count": 3,
    }
    second = api.get(body["next"]).json()
    assert [c["name"] for c in second["results"]] == ["Beta Corp"]
    assert [c["name"] for c in _results(api.get("/api/customers/?ordering=-name"))] == ["Beta Corp", "Alpha Customer"]
    assert [c["external_id"] for c in _results(api.get("/api/customers/?search=beta.test"))] == ["C2"]
    assert api.get("/api/customers/?page=9").status_code == 404


def test_customer_detail_and_other_partners_customer(api, alpha, bravo):
    assert api.get(f"/api/customers/{alpha['empty'].pk}/").json()["user_count"] == 0
    response = api.get(f"/api/customers/{bravo['customer'].pk}/")
    assert response.status_code == 404
    assert MARKER not in response.content.decode()


def test_own_subscriptions_only(api, alpha):
    rows = _results(api.get(f"/api/customers/{alpha['customer'].pk}/subscriptions/"))
    assert [(r["external_id"], r["sku"], r["quantity"]) for r in rows] == [
        ("S3", "DYN365_ENTERPRISE_SALES", 4),
        ("S4", "STANDARDPACK", 10),
        ("S1", "ENTERPRISEPACK", 10),
    ]  # by product name, as the page; the direct S2 never appears
    assert rows[2] == {
        "id": rows[2]["id"],
        "external_id": "S1",
        "sku": "ENTERPRISEPACK",
        "sku_name": "Office 365 E3",
        "product_family": "office365",
        "quantity": 10,
        "status": "active",
        "is_trial": False,
        "start_date": "2024-01-01",
        "end_date": None,
    }


# --- metrics: exact numbers -------------------------------------------------------------------------


def test_sku_metrics_equal_the_stored_snapshots_at_the_latest_date(api, alpha):
    rows = _results(api.get(f"/api/customers/{alpha['customer'].pk}/metrics/sku/"))
    stored = SkuSnapshot.objects.filter(customer=alpha["customer"], as_of=D).select_related("product")
    expected = sorted(
        (
            {"product_family": s.product.family, "sku": s.product.sku, "sku_name": s.product.name, **_licenses(s)}
            for s in stored
        ),
        key=lambda r: (r["product_family"], r["sku"]),
    )
    assert rows == expected
    by_sku = {r["sku"]: r for r in rows}
    # E3: 15 sold (10 own + 5 direct), 2 assigned, 2 entitled, 1 active.
    assert [by_sku["ENTERPRISEPACK"][k] for k in ("sold_licenses", "own_sold_licenses", "deployment_pct")] == [
        15,
        10,
        "13.3",
    ]
    assert (by_sku["ENTERPRISEPACK"]["usage_pct"], by_sku["DYN365_ENTERPRISE_SALES"]["usage_pct"]) == ("50.0", "100.0")
    # The grace E1: its user is active but nobody is entitled and nothing is sold: undefined, null.
    assert (by_sku["STANDARDPACK"]["deployment_pct"], by_sku["STANDARDPACK"]["usage_pct"]) == (None, None)


def test_metrics_of_a_date_a_range_and_filters(api, alpha):
    url = f"/api/customers/{alpha['customer'].pk}/metrics/sku/"
    assert {r["as_of"] for r in _results(api.get(url, {"as_of": EARLIER}))} == {EARLIER.isoformat()}
    ranged = _results(api.get(url, {"from": EARLIER, "to": D, "sku": "ENTERPRISEPACK"}))
    assert [(r["as_of"], r["sku"]) for r in ranged] == [
        (EARLIER.isoformat(), "ENTERPRISEPACK"),
        (D.isoformat(), "ENTERPRISEPACK"),
    ]
    assert {r["product_family"] for r in _results(api.get(url, {"product_family": "dynamics365"}))} == {"dynamics365"}
    assert _results(api.get(url, {"from": "2020-01-01", "to": "2020-01-02"})) == []  # a range may be empty
    ordered = _results(api.get(url, {"ordering": "-sold_licenses"}))
    assert [r["sold_licenses"] for r in ordered] == sorted((r["sold_licenses"] for r in ordered), reverse=True)


@pytest.mark.parametrize(
    "query",
    [
        {"as_of": "2024-13-01"},
        {"as_of": D, "from": EARLIER, "to": D},
        {"from": EARLIER},
        {"from": D, "to": EARLIER},
        {"product_family": "other"},
    ],
)
def test_invalid_dates_and_filters_are_400(api, alpha, query):
    response = api.get(f"/api/customers/{alpha['customer'].pk}/metrics/sku/", query)
    assert response.status_code == 400
    assert isinstance(response.json(), dict)


def test_workload_and_family_metrics_equal_the_stored_snapshots(api, alpha):
    base = f"/api/customers/{alpha['customer'].pk}/metrics"
    workloads = _results(api.get(f"{base}/workload/"))
    assert workloads == [
        {
            "as_of": D.isoformat(),
            "workload": w.workload,
            "entitled_users": w.entitled_users,
            "active_users": w.active_users,
            "usage_pct": pct(w.active_users, w.entitled_users) or None,
        }
        for w in WorkloadSnapshot.objects.filter(customer=alpha["customer"], as_of=D).order_by("workload")
    ]
    families = _results(api.get(f"{base}/family/"))
    assert families == [
        {"product_family": f.family, **_licenses(f)}
        for f in FamilySnapshot.objects.filter(customer=alpha["customer"], as_of=D).order_by("family")
    ]
    assert [f["product_family"] for f in families] == ["dynamics365", "office365"]


def test_portfolio_is_the_partners_own_sums(api, alpha, bravo):
    rows = _results(api.get("/api/portfolio/", {"from": EARLIER, "to": D}))
    stored = PortfolioSnapshot.objects.filter(partner=alpha["customer"].partner).order_by("as_of", "family")
    assert rows == [{"product_family": p.family, "customers": p.customers, **_licenses(p)} for p in stored]
    office = next(r for r in rows if r["as_of"] == D.isoformat() and r["product_family"] == "office365")
    assert (office["sold_licenses"], office["assigned_licenses"]) == (15, 2)  # never partner B's


def test_inactive_licensed_users_of_the_portfolio_and_of_a_customer(api, alpha, bravo):
    user = alpha["users"][1]  # entitled to E3, never active; the others are active or not entitled
    expected = [
        {
            "user_id": user.pk,
            "upn": user.upn,
            "display_name": user.display_name,
            "customer_id": alpha["customer"].pk,
            "customer_name": "Alpha Customer",
            "skus": ["ENTERPRISEPACK"],
            "last_activity": None,
            "monthly_cost": None,
        }
    ]
    assert _results(api.get("/api/inactive-users/")) == expected
    assert _results(api.get(f"/api/customers/{alpha['customer'].pk}/inactive-users/", {"days": 90})) == expected
    assert _results(api.get(f"/api/customers/{alpha['empty'].pk}/inactive-users/")) == []
    assert api.get("/api/inactive-users/", {"days": 45}).status_code == 400
    response = api.get(f"/api/customers/{bravo['customer'].pk}/inactive-users/")
    assert response.status_code == 404
    assert MARKER not in response.content.decode()


def test_metrics_before_any_snapshot_are_an_empty_list(partner, staff):
    customer = factories.CustomerFactory(partner=partner)
    client = token_client_for(staff[SA])
    assert _results(client.get(f"/api/customers/{customer.pk}/metrics/family/")) == []
    assert _results(client.get("/api/portfolio/")) == []
    assert _results(client.get("/api/inactive-users/")) == []


def test_runs(api, alpha, partner):
    runs = _results(api.get("/api/recompute-runs/"))
    assert {r["as_of"] for r in runs} == {EARLIER.isoformat(), D.isoformat()}
    run = RecomputeRun.objects.get(partner=partner, as_of=D)
    assert api.get(f"/api/recompute-runs/{run.pk}/").json()["status"] == "succeeded"
    assert _results(api.get("/api/recompute-runs/?status=failed")) == []
    assert _results(api.get("/api/imports/")) == []


@pytest.mark.parametrize(("role", "allowed"), [(GA, True), (UA, False), (AA, True), (SA, False)])
def test_runs_are_for_the_roles_of_the_import_and_status_pages(staff, alpha, role, allowed):
    client = token_client_for(staff[role])
    for path in ("/api/imports/", "/api/recompute-runs/"):
        assert client.get(path).status_code == (200 if allowed else 403)
    assert client.get("/api/customers/").status_code == 200


# --- the .zip import --------------------------------------------------------------------------------


def _zip(files: dict[str, str], name: str = "import.zip") -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    buffer.seek(0)
    buffer.name = name
    return buffer


GOOD = {
    "customers.csv": "customer_id,name,domain\nC9,New Customer,new.test\n",
    "users.csv": "user_id,customer_id,upn\nU9,C9,u9@new.test\n",
}
BAD = {
    "customers.csv": "customer_id,name\nC9,New Customer\n",
    "users.csv": "user_id,customer_id,upn\nU9,NOPE,u9@new.test\n",
    "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
    "S9,C9,ENTERPRISEPACK,-3,active,false,own\n",
}


def test_import_answers_202_at_once_and_the_run_succeeds_in_the_worker(api, partner):
    with TestCase.captureOnCommitCallbacks(execute=True):  # the request's commit queues the import
        accepted = api.post("/api/imports/", {"file": _zip(GOOD)})
        queued = accepted.json()
        assert not Customer.objects.filter(partner=partner, external_id="C9").exists()  # not read in the request
    assert accepted.status_code == 202, accepted.content
    run = ImportRun.objects.get(pk=queued["id"])
    assert accepted["Location"] == queued["url"] == f"http://testserver/api/imports/{run.pk}/"
    assert (queued["status"], queued["phase"], queued["origin"], queued["attempts"]) == ("queued", "queued", "api", 1)
    assert queued["upload"] == {
        "files": ["import.zip"],
        "bytes": run.upload_bytes,
        "removed_at": None,
        "restartable": False,  # just queued: a worker will take it
    }
    assert len(queued["sha256"]) == 64
    body = api.get(accepted["Location"]).json()
    assert (run.origin, body["status"], body["phase"], body["error_count"], body["errors"]) == (
        "api",
        "succeeded",
        "done",
        0,
        [],
    )
    assert body["counts"]["customers.csv"] == {"rows": 1, "created": 1, "updated": 0, "unchanged": 0}
    assert body["totals"] == {"created": 2, "updated": 0, "unchanged": 0}
    assert body["progress"]["rows_read"] == 2
    assert (body["progress"]["files_done"], body["progress"]["files_total"]) == (2, 2)
    assert body["started_by"] == "global_admin@alpha.example"
    assert body["upload"]["restartable"] is False  # it succeeded
    assert Customer.objects.filter(partner=partner, external_id="C9").exists()


def test_refused_import_returns_every_problem_and_writes_nothing(api, partner):
    before = sorted(Customer.objects.values_list("external_id", flat=True))
    accepted = committed(api.post, "/api/imports/", {"file": _zip(BAD)})
    assert accepted.status_code == 202
    body = api.get(accepted["Location"]).json()
    assert body["status"] == "failed"
    assert body["error_count"] == 2
    assert body["errors"] == [
        {"file": "subscriptions.csv", "line": 2, "column": "quantity", "reason": "negative quantity", "value": "-3"},
        {
            "file": "users.csv",
            "line": 2,
            "column": "customer_id",
            "reason": "unknown customer: not in this import nor already stored",
            "value": "NOPE",
        },
    ]
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == before


def test_oversize_upload_is_413_and_nothing_is_read(api, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    response = api.post("/api/imports/", {"file": _zip(GOOD)})
    assert response.status_code == 413
    (issue,) = response.json()["errors"]
    assert (issue["line"], issue["reason"].startswith("larger than the upload limit of 100 bytes")) == (0, True)
    assert ImportRun.objects.count() == 0


@pytest.mark.parametrize("data", [{}, {"file": io.BytesIO(b"customer_id,name\n")}])
def test_import_needs_one_zip_file(api, data):
    if "file" in data:
        data["file"].name = "customers.csv"
    response = api.post("/api/imports/", data)
    assert response.status_code == 400
    assert "file" in response.json()
    assert ImportRun.objects.count() == 0


def test_a_zip_escaping_its_folder_is_refused(api):
    accepted = committed(api.post, "/api/imports/", {"file": _zip({"../customers.csv": "customer_id,name\nC9,X\n"})})
    assert api.get(accepted["Location"]).json()["errors"][0]["reason"] == "entry escapes the archive folder"


@pytest.mark.parametrize("role", [UA, SA])
def test_roles_that_may_not_import_get_403_and_nothing_changes(staff, alpha, role):
    before = (Customer.objects.count(), ImportRun.objects.count(), RecomputeRun.objects.count())
    response = token_client_for(staff[role]).post("/api/imports/", {"file": _zip(GOOD)})
    assert response.status_code == 403
    assert (Customer.objects.count(), ImportRun.objects.count(), RecomputeRun.objects.count()) == before


# --- schema -------------------------------------------------------------------------------------------


def test_schema_generates_without_warnings_and_validates(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/customers/{customer_id}/metrics/sku/" in (tmp_path / "schema.yaml").read_text()


def test_schema_is_served_to_signed_in_users_only(api):
    assert api.get(reverse("api:schema"), {"format": "json"}).json()["openapi"].startswith("3.")
    assert Client().get(reverse("api:schema")).status_code == 401
