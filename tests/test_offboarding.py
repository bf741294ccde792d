"""Offboarding a partner (`offboard_partner SLUG`): everything of that partner goes, set-based (a
fixed number of statements whatever its size), after a confirmation; no row of another partner
and nothing of the shared catalog changes. Committed for real (transactional_db), so the
database checks its foreign keys at the commit."""

from __future__ import annotations

import io

import pytest
from axes.models import AccessAttempt
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Partner, StaffUser
from accounts.operators.offboarding import partner_offboard, targets
from accounts.roles import Role
from customers.models import Activity, Product, ProductWorkload, SupportRequest
from exports.models import ReportDelivery, ReportSchedule
from imports.models import ImportRun
from metrics.models import InsightSettings, SkuSetting, Trigger
from metrics.services import metrics_recompute
from tests import factories
from tests.conftest import PASSWORD, SNAPSHOT_DATE, log_in, tenant_tables

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keeps the catalog


def populate(slug: str, *, customers: int) -> Partner:
    """A partner with rows in every table that can hold its data: `customers` customers with
    users, subscriptions (own product and the catalog's), assignments, activity, support requests,
    published metrics, settings, staff with tokens, report schedule and deliveries, import runs
    and sign-in failures."""
    partner = factories.PartnerFactory(slug=slug, name=f"{slug} partners")
    own = Product.objects.create(partner=partner, sku=f"{slug.upper()}_SUITE", name="Suite", family="office365")
    ProductWorkload.objects.create(product=own, workload="exchange")
    for number in range(customers):
        customer = factories.CustomerFactory(partner=partner, external_id=f"{slug}-c{number}")
        for product in (own, factories.catalog_product("ENTERPRISEPACK")):
            subscription = factories.SubscriptionFactory(customer=customer, product=product, quantity=10)
            for user_number in range(2):
                user = factories.EndUserFactory(
                    customer=customer, external_id=f"{slug}-{number}-{product.pk}-{user_number}"
                )
                factories.AssignmentFactory(user=user, subscription=subscription)
                Activity.objects.create(partner=partner, user=user, workload="exchange", activity_date=SNAPSHOT_DATE)
        SupportRequest.objects.create(
            partner=partner,
            customer=customer,
            external_id=f"{slug}-r{number}",
            opened_on=SNAPSHOT_DATE,
            category="howto",
        )
    metrics_recompute(partner=partner, as_of=SNAPSHOT_DATE, trigger=Trigger.COMMAND)
    InsightSettings.objects.create(partner=partner)
    SkuSetting.objects.create(partner=partner, sku="ENTERPRISEPACK", monthly_price=20)
    admin = StaffUser.objects.create_user(f"admin@{slug}.example", PASSWORD, partner=partner, role=Role.GLOBAL_ADMIN)
    account_services.api_token_create(user=admin, name="sync")
    schedule = ReportSchedule.objects.create(partner=partner, cadence="weekly")
    schedule.recipients.add(admin)
    ReportDelivery.objects.create(partner=partner, period="2026-W49", as_of=SNAPSHOT_DATE, sent_at=timezone.now())
    ImportRun.objects.create(partner=partner, origin=ImportRun.Origin.UPLOAD, source_name="x", started_by=admin)
    AccessAttempt.objects.create(username=admin.email.upper(), ip_address="10.0.0.1", failures_since_start=2)
    return partner


def test_the_tables_of_every_app_are_found_children_first():
    order = [target.table for target in targets()]
    assert order[-1] == "accounts_partner"
    expected = {
        "customers_activity",
        "customers_licenseassignment",
        "customers_productworkload",
        "metrics_skusnapshot",
        "metrics_recomputerun",
        "customers_importrun",
        "exports_reportschedule_recipients",
        "accounts_apitoken",
        "accounts_staffuser_groups",
        "axes_accessattempt",
    }
    assert expected <= set(order)
    for child, parent in [
        ("customers_activity", "customers_enduser"),
        ("customers_licenseassignment", "customers_subscription"),
        ("customers_subscription", "customers_product"),
        ("metrics_skusnapshot", "customers_customer"),
        ("customers_importrun", "accounts_staffuser"),
        ("axes_accessattempt", "accounts_staffuser"),
        ("exports_reportschedule_recipients", "exports_reportschedule"),
    ]:
        assert order.index(child) < order.index(parent), (child, parent)


def test_offboarding_deletes_everything_of_the_partner_in_a_fixed_number_of_statements(bravo, other_partner):
    untouched = tenant_tables()  # the other partner (bravo) and the shared catalog
    attempts = list(AccessAttempt.objects.values_list("pk", flat=True))
    small, large = populate("small", customers=1), populate("large", customers=4)

    statements = []
    for partner in (small, large):
        with CaptureQueriesContext(connection) as queries:
            deleted = partner_offboard(partner=partner)
        statements.append(len(queries))
        assert deleted["accounts_partner"] == 1
        assert deleted["customers_activity"] == (4 if partner is small else 16)
    assert statements[0] == statements[1]  # set-based: the same statements for 1 or 4 customers
    assert statements[0] <= len(targets()) + 10

    assert tenant_tables() == untouched
    assert list(AccessAttempt.objects.values_list("pk", flat=True)) == attempts
    assert not Partner.objects.filter(slug__in=["small", "large"]).exists()


def test_the_command_asks_for_the_slug_and_says_what_it_deleted(bravo, other_partner, monkeypatch, capsys):
    partner = populate("gamma", customers=2)
    before = tenant_tables()
    for answer in ("", "gamm\n", "bravo\n"):
        monkeypatch.setattr("sys.stdin", io.StringIO(answer))
        with pytest.raises(CommandError, match="Not confirmed"):
            call_command("offboard_partner", "gamma")
    assert tenant_tables() == before

    monkeypatch.setattr("sys.stdin", io.StringIO("gamma\n"))
    call_command("offboard_partner", "gamma")
    err = capsys.readouterr().err
    assert "customers_activity: 8 rows" in err  # what it holds, before the question
    assert "Type the slug (gamma) to confirm" in err
    assert "deleted 8 rows of customers_activity" in err
    assert "deleted 1 rows of accounts_partner" in err
    assert not Partner.objects.filter(pk=partner.pk).exists()
    assert Partner.objects.filter(pk=other_partner.pk).exists()


def test_yes_skips_the_question_and_an_unknown_slug_is_an_error(bravo, other_partner, capsys):
    populate("delta", customers=1)
    call_command("offboard_partner", "delta", "--yes")
    assert "Offboarded 'delta'" in capsys.readouterr().err
    with pytest.raises(CommandError, match="No partner with slug 'delta'"):
        call_command("offboard_partner", "delta", "--yes")
    assert StaffUser.objects.filter(partner=other_partner).exists()


def test_the_partners_staff_can_no_longer_sign_in_or_use_their_tokens(bravo, other_partner):
    member = bravo["staff"]
    _, secret = account_services.api_token_create(user=member, name="ci")
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/customers/").status_code == 200
    call_command("offboard_partner", other_partner.slug, "--yes")
    assert not log_in(Client(), member.email, PASSWORD)
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/customers/").status_code == 401
