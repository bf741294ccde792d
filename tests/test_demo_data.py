"""generate_demo_data: the demo partner, its logins, and every case it promises (SPEC §5, §2)."""

from __future__ import annotations

import datetime as dt
import filecmp
import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db.models import Count, Max, Min
from django.test import RequestFactory
from django_scopes import scopes_disabled

from accounts.models import Partner, StaffUser
from customers.models import Activity, Customer, EndUser, LicenseAssignment, Subscription, SupportRequest
from imports.demo import SPECIAL_CUSTOMERS
from metrics.models import FamilySnapshot, WorkloadSnapshot

TODAY = dt.date(2026, 3, 15)
YESTERDAY = TODAY - dt.timedelta(days=1)
WINDOW_START = YESTERDAY - dt.timedelta(days=27)
SMALL = ["--users", "600", "--today", TODAY.isoformat(), "--metrics-days", "1"]


def generate(*args: str) -> str:
    err = io.StringIO()
    call_command("generate_demo_data", *args, stderr=err, stdout=io.StringIO())
    return err.getvalue()


def usage(external_id: str) -> tuple[int, int]:
    row = FamilySnapshot.objects.get(
        customer__partner__slug="demo", customer__external_id=external_id, family="office365", as_of=YESTERDAY
    )
    return row.active_users, row.entitled_users


pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """Generated once for the module (committed), removed again after it."""
    with django_db_blocker.unblock(), scopes_disabled():
        output = generate(*SMALL)
    yield output
    with django_db_blocker.unblock(), scopes_disabled():
        Partner.objects.filter(slug__in=["demo", "northwind"]).delete()


def test_demo_partner_has_one_login_per_role_that_works(demo):
    partner = Partner.objects.get(slug="demo")
    roles = dict(StaffUser.objects.filter(partner=partner).values_list("email", "role"))
    assert roles == {
        "global.admin@demo.example": "global_admin",
        "user.admin@demo.example": "user_admin",
        "admin.agent@demo.example": "admin_agent",
        "sales.agent@demo.example": "sales_agent",
    }
    for email in roles:
        assert (
            authenticate(RequestFactory().post("/accounts/login/"), username=email, password="demo-password-2024")
            is not None
        )
        assert email in demo  # the logins are printed


def test_forty_plus_customers_of_very_different_adoption(demo):
    customers = Customer.objects.filter(partner__slug="demo")
    assert customers.count() >= 40
    assert customers.filter(name__in=["Müller GmbH", "東京 Trading"]).count() == 2
    rows = FamilySnapshot.objects.filter(partner__slug="demo", family="office365", as_of=YESTERDAY)
    usages = [r.active_users / r.entitled_users for r in rows if r.entitled_users]
    assert min(usages) < 0.3
    assert max(usages) > 1.0
    assert sum(0.4 <= u <= 0.9 for u in usages) >= 5


def test_at_least_120_days_of_activity_history(demo):
    span = Activity.objects.filter(partner__slug="demo").aggregate(
        first=Min("activity_date"), last=Max("activity_date")
    )
    assert span["last"] == YESTERDAY
    assert (span["last"] - span["first"]).days >= 120


def test_turnover_license_moved_to_a_new_user_inside_the_window(demo):
    (subscription,) = Subscription.objects.filter(customer__external_id="DEMO-TURNOVER", customer__partner__slug="demo")
    removed = LicenseAssignment.objects.get(subscription=subscription, removed_on__isnull=False)
    assert WINDOW_START < removed.removed_on <= YESTERDAY
    newcomer = LicenseAssignment.objects.get(subscription=subscription, assigned_on=removed.removed_on)
    for user_id in (removed.user_id, newcomer.user_id):
        assert Activity.objects.filter(user_id=user_id, activity_date__gte=WINDOW_START).exists()
    active, entitled = usage("DEMO-TURNOVER")
    assert active > entitled


@pytest.mark.parametrize("status", ["grace", "disabled", "preprovisioned"])
def test_second_subscription_not_counted(demo, status):
    external_id = f"DEMO-{status.upper()}"
    subscriptions = Subscription.objects.filter(customer__external_id=external_id, customer__partner__slug="demo")
    assert sorted(subscriptions.values_list("product__sku", "status")) == [
        ("ENTERPRISEPACK", "active"),
        ("ENTERPRISEPACK", status),
    ]
    lapsed_users = LicenseAssignment.objects.filter(subscription__status=status, subscription__in=subscriptions)
    assert Activity.objects.filter(user__in=lapsed_users.values("user"), activity_date__gte=WINDOW_START).exists()
    active, entitled = usage(external_id)
    assert active > entitled


def test_trial_users_are_active_but_not_entitled(demo):
    trial = Subscription.objects.get(customer__external_id="DEMO-TRIAL", customer__partner__slug="demo", is_trial=True)
    assert trial.status == "active"
    trial_users = LicenseAssignment.objects.filter(subscription=trial).values("user")
    assert Activity.objects.filter(user__in=trial_users, activity_date__gte=WINDOW_START).exists()
    active, entitled = usage("DEMO-TRIAL")
    assert active > entitled


def test_heavy_yammer_use_without_licenses(demo):
    customer = Customer.objects.get(partner__slug="demo", external_id="DEMO-YAMMER")
    unlicensed = EndUser.objects.filter(customer=customer, assignments__isnull=True)
    assert unlicensed.count() >= 20
    yammer = WorkloadSnapshot.objects.get(customer=customer, workload="yammer", as_of=YESTERDAY)
    assert yammer.active_users > 2 * yammer.entitled_users


def test_support_requests_with_a_how_to_heavy_customer(demo):
    categories = dict(
        SupportRequest.objects.filter(partner__slug="demo").values_list("category").annotate(n=Count("id"))
    )
    assert set(categories) == {"howto", "incident", "billing", "other"}
    recent_howto = SupportRequest.objects.filter(
        customer__external_id="DEMO-HOWTO",
        customer__partner__slug="demo",
        category="howto",
        opened_on__gte=WINDOW_START,
    )
    assert recent_howto.count() >= 10


def test_a_customer_without_any_data(demo):
    empty = Customer.objects.get(partner__slug="demo", external_id="DEMO-EMPTY")
    assert not Subscription.objects.filter(customer=empty).exists()
    assert not EndUser.objects.filter(customer=empty).exists()


def test_every_named_case_exists(demo):
    ids = set(Customer.objects.filter(partner__slug="demo").values_list("external_id", flat=True))
    assert set(SPECIAL_CUSTOMERS) <= ids


def test_second_partner_reuses_external_ids_in_separate_records(demo):
    northwind = Customer.objects.filter(partner__slug="northwind")
    shared = set(northwind.values_list("external_id", flat=True)) & set(
        Customer.objects.filter(partner__slug="demo").values_list("external_id", flat=True)
    )
    assert "DEMO-TURNOVER" in shared
    assert (
        northwind.get(external_id="DEMO-TURNOVER").pk
        != Customer.objects.get(partner__slug="demo", external_id="DEMO-TURNOVER").pk
    )
    assert authenticate(
        RequestFactory().post("/accounts/login/"),
        username="global.admin@northwind.example",
        password="demo-password-2024",
    ).partner.slug == ("northwind")


def test_running_it_twice_changes_nothing(demo):
    counts = [m.objects.count() for m in (Customer, Subscription, EndUser, LicenseAssignment, Activity, StaffUser)]
    generate(*SMALL)
    assert [m.objects.count() for m in (Customer, Subscription, EndUser, LicenseAssignment, Activity, StaffUser)] == (
        counts
    )
    assert "nothing to do" in generate(*SMALL, "--if-missing")


def test_same_seed_same_files_and_another_seed_other_files(tmp_path):
    for name, seed in [("a", "7"), ("b", "7"), ("c", "8")]:
        generate("--output", str(tmp_path / name), "--seed", seed, "--today", TODAY.isoformat(), "--users", "300")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)[0] == names
    assert filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", names, shallow=False)[1] != []


def test_scales_up_for_benchmarks(tmp_path):
    output = generate("--output", str(tmp_path), "--customers", "60", "--users", "3000", "--days", "35")
    lines = (tmp_path / "users.csv").read_text().count("\n") - 1
    assert 2900 <= lines <= 3300
    assert (tmp_path / "customers.csv").read_text().count("\n") - 1 == 60
    assert "3," in output
