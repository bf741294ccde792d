"""The customer pages (SPEC §2, §3, §5, §8): list, insights, own subscriptions, settings."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Activity, Customer, EndUser, LicenseAssignment
from metrics.models import FamilySnapshot, InsightSettings, SkuSetting, SkuSnapshot, WorkloadSnapshot
from metrics.numbers import pct
from tests import factories
from tests.test_metrics import LONG_AGO, W0, D, World

DAY = dt.timedelta(days=1)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return html.unescape(response.content.decode())


def metric(text: str, family: str, name: str) -> str:
    """A number of the headline card of one family, as rendered."""
    card = text.split(f'data-family="{family}"', 1)[1].split("</article>", 1)[0]
    return re.search(rf'data-metric="{name}">([^<]*)<', card).group(1)


def sku_cells(text: str, sku: str) -> list[str]:
    row = text.split(f'data-sku="{sku}"', 1)[1].split("</tr>", 1)[0]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


@pytest.fixture
def world(partner):
    return World(partner)


def insights(client, world, query: str = "") -> str:
    return page(client, f"/customers/{world.customer.pk}/insights/{query}")


class TestInsightsNumbers:
    def test_every_number_equals_the_stored_snapshot(self, admin_client, world):
        e3 = world.sub("ENTERPRISEPACK", quantity=1200, source="other_partner")
        world.sub("ENTERPRISEPACK", quantity=800)
        e1 = world.sub("STANDARDPACK", quantity=7)
        dyn = world.sub("DYN365_ENTERPRISE_SALES", quantity=3)
        for n in range(37):
            world.licensed(e3, active=n % 3 == 0)
        world.licensed(e1)
        world.licensed(dyn, active=False)
        world.compute()
        text = insights(admin_client, world)
        for row in FamilySnapshot.objects.filter(customer=world.customer, as_of=D):
            for name in ("sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users"):
                assert metric(text, row.family, name) == f"{getattr(row, name):,}"
            assert metric(text, row.family, "unused_licenses") == f"{row.unused_licenses:,}"
            assert metric(text, row.family, "deployment_pct") == (
                row.deployment_pct + "%" if row.deployment_pct else "—"
            )
            assert metric(text, row.family, "usage_pct") == (row.usage_pct + "%" if row.usage_pct else "—")
        for row in SkuSnapshot.objects.filter(customer=world.customer, as_of=D).select_related("product"):
            numbers = [row.sold_licenses, row.own_sold_licenses, row.assigned_licenses, row.entitled_users]
            expected = [f"{n:,}" for n in [*numbers, row.active_users]]
            assert sku_cells(text, row.product.sku)[2:10] == [
                *expected,
                row.deployment_pct or "—",
                row.usage_pct or "—",
                f"{row.unused_licenses:,}",
            ]
        workloads = WorkloadSnapshot.objects.filter(customer=world.customer, as_of=D)
        assert workloads.count() > 1
        for row in workloads:
            cells = text.split(f'data-workload="{row.workload}"', 1)[1].split("</tr>", 1)[0]
            shown = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
            assert shown[1:] == [f"{row.entitled_users:,}", f"{row.active_users:,}", row.usage_pct or "—"]
        assert metric(text, "office365", "sold_licenses") == "2,007"
        assert metric(text, "office365", "deployment_pct") == pct(38, 2007) + "%"
        assert "include licenses" in text or "every seller" in text

    def test_undefined_percentages_are_empty_never_zero(self, admin_client, world):
        world.licensed(world.sub(quantity=0, status="grace"))  # active but neither sold nor entitled
        world.compute()
        text = insights(admin_client, world)
        assert metric(text, "office365", "deployment_pct") == "—"
        assert metric(text, "office365", "usage_pct") == "—"

    def test_as_of_picker_offers_snapshot_dates_and_says_when_one_is_missing(self, admin_client, world):
        world.licensed(world.sub())
        world.compute(D - DAY)
        world.compute(D)
        text = insights(admin_client, world)
        assert '<option value="2024-06-30" selected>' in text
        assert '<option value="2024-06-29">' in text
        text = insights(admin_client, world, "?as_of=2024-06-29")
        assert '<option value="2024-06-29" selected>' in text
        text = insights(admin_client, world, "?as_of=2024-05-01")
        assert "There is no snapshot for 2024-05-01; showing 2024-06-30" in text

    def test_a_customer_without_data_and_a_partner_without_metrics(self, admin_client, world):
        assert "No metrics yet" in insights(admin_client, world)
        other = World(world.partner)
        other.licensed(other.sub())
        other.compute()
        assert "No Office 365 or Dynamics 365 licenses or activity" in insights(admin_client, world)


class TestUsageAbove100Explanation:
    def test_each_cause_is_counted(self, admin_client, world):
        counted = world.sub("ENTERPRISEPACK", quantity=10)
        for _ in range(2):
            world.licensed(counted)  # entitled and active: no explanation needed
        world.licensed(world.sub("ENTERPRISEPACK", is_trial=True))
        for _ in range(2):
            world.licensed(world.sub("ENTERPRISEPACK", status="grace"))
        world.licensed(world.sub("ENTERPRISEPACK", status="disabled"))
        world.licensed(counted, removed=D - 3 * DAY)  # moved to someone else in the window
        world.licensed(counted, state="suspended")
        for _ in range(3):
            yammer_only = world.user()
            world.act(yammer_only, "yammer")
        world.compute()
        assert world.sku() == (10, 10, 3, 2, 8)  # usage 400%
        text = insights(admin_client, world)
        assert "Why usage passes 100%" in text
        causes = re.findall(r"<span data-cause>([^<]*)</span>", text)
        assert causes == [
            "1 from trial subscriptions (active, never entitled)",
            "3 from subscriptions in grace, disabled or pre-provisioned status",
            "1 whose license moved to another user within the window",
            "1 holding a suspended or upgraded license, or one on a subscription not started or ended",
            "3 users active on Yammer without a license that includes it",
        ]

    def test_no_explanation_when_usage_stays_at_or_below_100(self, admin_client, world):
        world.licensed(world.sub())
        world.compute()
        assert "Why usage passes 100%" not in insights(admin_client, world)


class TestRecommendationsOnThePage:
    def test_low_adoption_shows_its_numbers_and_advice(self, admin_client, world):
        subscription = world.sub(quantity=40)
        for n in range(30):
            world.licensed(subscription, active=n < 12)
        world.compute()
        text = insights(admin_client, world)
        assert 'data-kind="low_adoption"' in text
        assert "usage 40.0% (12 active of 30 users) is below 60%" in text
        assert "10 of 40 licenses unused" in text
        assert "case studies" in text

    def test_thresholds_from_the_settings_page_apply(self, admin_client, world):
        subscription = world.sub(quantity=10)
        for n in range(10):
            world.licensed(subscription, active=n < 7)
        world.compute()
        assert 'data-kind="low_adoption"' not in insights(admin_client, world)
        InsightSettings.objects.create(partner=world.partner, low_usage_pct=75)
        assert 'data-kind="low_adoption"' in insights(admin_client, world)


class TestInactiveAndRenewals:
    def test_inactive_users_with_licenses_and_last_activity(self, admin_client, world):
        subscription = world.sub()
        world.licensed(subscription)
        idle = world.licensed(subscription, active=False)
        world.act(idle, "teams", D - 45 * DAY)
        never = world.licensed(subscription, active=False)
        world.compute()
        text = insights(admin_client, world, "?inactive_days=30")
        assert re.search(r'data-metric="inactive_total">2<', text)
        assert f"{idle.upn}</td>" in text
        assert "2024-05-16" in text
        assert f"{never.upn}</td>" in text
        assert ">never<" in text
        text = insights(admin_client, world, "?inactive_days=60")
        assert re.search(r'data-metric="inactive_total">1<', text)

    def test_renewals_and_trials_ending_within_30_days_with_unused_seats(self, admin_client, world):
        ending = world.sub(quantity=10, external_id="ENDS-SOON", end_date=D + 30 * DAY)
        world.licensed(ending)
        world.licensed(ending, removed=D)  # no longer assigned at D
        world.sub(quantity=5, external_id="TRIAL-ENDS", is_trial=True, end_date=D + DAY)
        world.sub(external_id="TOO-LATE", end_date=D + 31 * DAY)
        world.sub(external_id="ENDS-TODAY", end_date=D)
        world.sub(external_id="CANCELLED", status="cancelled", end_date=D + 5 * DAY)
        world.compute()
        text = insights(admin_client, world)
        section = text.split('id="renewals"', 1)[1].split("</section>", 1)[0]
        rows = re.findall(r"<tr><td><code>([^<]+)</code>.*?</tr>", section, re.S)
        assert rows == ["TRIAL-ENDS", "ENDS-SOON"]
        assert sku_row_numbers(section, "ENDS-SOON") == ["10", "1", "9"]


def sku_row_numbers(section: str, subscription_id: str) -> list[str]:
    row = section.split(f"<code>{subscription_id}</code>", 1)[1].split("</tr>", 1)[0]
    return re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)


def test_insights_run_the_same_number_of_queries_for_10_and_5000_users(admin_client, partner):
    def customer_with(users: int):
        world = World(partner)
        subscription = world.sub(quantity=users)
        people = EndUser.objects.bulk_create(
            EndUser(partner=partner, customer=world.customer, external_id=f"{world.customer.pk}-{n}", upn=f"u{n}@x")
            for n in range(users)
        )
        LicenseAssignment.objects.bulk_create(
            LicenseAssignment(
                partner=partner,
                customer=world.customer,
                user=u,
                subscription=subscription,
                assigned_on=LONG_AGO,
                state="active",
            )
            for u in people
        )
        Activity.objects.bulk_create(
            Activity(partner=partner, user=u, workload="exchange", activity_date=W0) for u in people[::2]
        )
        return world

    small, large = customer_with(10), customer_with(5000)
    small.compute()

    def count(world) -> int:
        with CaptureQueriesContext(connection) as queries:
            insights(admin_client, world)
        return len(queries)

    assert count(small) == count(large)
    assert count(large) <= 25


class TestCustomerList:
    @pytest.fixture
    def customers(self, partner):
        made = {}
        for name, sold, assigned, active in [("Beta", 10, 10, 9), ("alpha", 40, 20, 2), ("Gamma", 5, 5, 5)]:
            world = World(partner)
            world.customer.name = name
            world.customer.save()
            subscription = world.sub(quantity=sold)
            for n in range(assigned):
                world.licensed(subscription, active=n < active)
            made[name] = world
        empty = factories.CustomerFactory(partner=partner, name="Delta without data")
        made["Delta"] = empty
        made["Beta"].compute()
        return made

    def names(self, client, query=""):
        response = client.get(f"/customers/{query}")
        assert response.status_code == 200
        return [c.name for c in response.context["page"].object_list]

    def test_every_customer_with_its_latest_numbers_and_badges(self, admin_client, customers):
        text = page(admin_client, "/customers/")
        assert self.names(admin_client) == ["alpha", "Beta", "Delta without data", "Gamma"]  # A to Z, any case
        alpha = text.split(">alpha</a>", 1)[1].split("</tr>", 1)[0]
        assert re.findall(r'<td class="num[^"]*">([^<]*)</td>', alpha) == ["40", "20", "20", "2", "50.0", "10.0", "20"]
        assert 'class="badge rec-low_adoption"' in alpha
        assert "no Office 365 data on 2024-06-30" in text.split(">Delta without data</a>", 1)[1].split("</tr>", 1)[0]
        for world in customers.values():
            customer = getattr(world, "customer", world)
            assert f'href="/customers/{customer.pk}/insights/"' in text

    def test_sort_by_any_column_with_no_data_last(self, admin_client, customers):
        assert self.names(admin_client, "?sort=-usage") == ["Gamma", "Beta", "alpha", "Delta without data"]
        assert self.names(admin_client, "?sort=unused") == ["Beta", "Gamma", "alpha", "Delta without data"]
        assert self.names(admin_client, "?sort=usage") == ["alpha", "Beta", "Gamma", "Delta without data"]
        assert self.names(admin_client, "?sort=-unused") == ["alpha", "Beta", "Gamma", "Delta without data"]
        assert self.names(admin_client, "?sort=-name") == ["Gamma", "Delta without data", "Beta", "alpha"]
        assert self.names(admin_client, "?sort=bogus") == self.names(admin_client)

    def test_search_and_filters(self, admin_client, customers):
        assert self.names(admin_client, "?q=ALP") == ["alpha"]
        assert self.names(admin_client, "?usage=0-20") == ["alpha"]
        assert self.names(admin_client, "?usage=80-100") == ["Beta"]
        assert self.names(admin_client, "?usage=100%2B") == ["Gamma"]
        assert self.names(admin_client, "?usage=none") == ["Delta without data"]
        assert self.names(admin_client, "?kind=low_adoption") == ["alpha"]
        assert self.names(admin_client, "?kind=growth") == ["Beta", "Gamma"]
        assert self.names(admin_client, "?family=dynamics365&usage=none") == self.names(admin_client)

    def test_badges_and_the_recommendation_filter_follow_the_family_shown(self, admin_client, partner, customers):
        gamma = customers["Gamma"]
        dynamics = gamma.sub("DYN365_ENTERPRISE_SALES", quantity=30)
        gamma.licensed(dynamics, active=False)
        gamma.compute()  # Gamma: Office 365 growth, Dynamics 365 low adoption
        office = page(admin_client, "/customers/").split(">Gamma</a>", 1)[1].split("</tr>", 1)[0]
        assert "rec-growth" in office
        assert "rec-low_adoption" not in office
        dynamics_page = page(admin_client, "/customers/?family=dynamics365")
        row = dynamics_page.split(">Gamma</a>", 1)[1].split("</tr>", 1)[0]
        assert "rec-low_adoption" in row
        assert "rec-growth" not in row
        assert "no Dynamics 365 data on 2024-06-30" in dynamics_page.split(">Beta</a>", 1)[1].split("</tr>", 1)[0]
        assert self.names(admin_client, "?kind=low_adoption") == ["alpha"]
        assert self.names(admin_client, "?family=dynamics365&kind=low_adoption") == ["Gamma"]

    def test_pagination_keeps_the_filters(self, admin_client, partner, customers, monkeypatch):
        monkeypatch.setattr("dashboard.customer_list.CUSTOMERS_PER_PAGE", 2)
        text = page(admin_client, "/customers/?sort=-sold")
        assert "?sort=-sold&amp;page=2" in admin_client.get("/customers/?sort=-sold").content.decode()
        assert "Page 1 of 2" in text
        assert self.names(admin_client, "?sort=-sold&page=2") == ["Gamma", "Delta without data"]

    def test_bounded_queries_for_20_and_200_customers(self, admin_client, partner, django_assert_max_num_queries):
        first = World(partner)
        first.licensed(first.sub())
        first.compute()  # publishes D

        def grow(total: int) -> None:
            customers = factories.CustomerFactory.create_batch(total - Customer.objects.count(), partner=partner)
            FamilySnapshot.objects.bulk_create(
                FamilySnapshot(
                    partner=partner,
                    customer=customer,
                    family="office365",
                    as_of=D,
                    **{f"{prefix}{name}": value for prefix in ("", "rec_") for name, value in LOW_ADOPTION.items()},
                )
                for customer in customers
            )

        grow(20)
        with django_assert_max_num_queries(12):
            admin_client.get("/customers/?sort=-usage")
        grow(200)
        with django_assert_max_num_queries(12):
            response = admin_client.get("/customers/?sort=-usage")
        assert response.context["page"].paginator.count == 200
        assert b"badge rec-low_adoption" in response.content


LOW_ADOPTION = {"sold_licenses": 10, "assigned_licenses": 3, "entitled_users": 3, "active_users": 1}


class TestSettingsPage:
    def test_saving_an_exclusion_recomputes_the_recommendation_numbers(
        self, admin_client, world, django_capture_on_commit_callbacks
    ):
        world.licensed(world.sub("STANDARDPACK", quantity=50), active=False)
        world.licensed(world.sub("ENTERPRISEPACK", quantity=1))
        world.compute()
        assert 'data-kind="low_adoption"' in insights(admin_client, world)
        text = page(admin_client, "/settings/")
        skus = re.findall(r'name="(sku-\d+)-sku" value="([^"]+)"', text)
        data = {
            **factories.SETTINGS_FORM,
            "low_usage_pct": "60",
            "sku-TOTAL_FORMS": str(len(skus)),
            "sku-INITIAL_FORMS": str(len(skus)),
        }
        for prefix, sku in skus:
            data[f"{prefix}-sku"] = sku
            if sku == "STANDARDPACK":
                data[f"{prefix}-excluded"] = "on"
            if sku == "ENTERPRISEPACK":
                data[f"{prefix}-monthly_price"] = "31.20"
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post("/settings/", data)
        assert response.status_code == 302
        assert list(SkuSetting.objects.values_list("sku", "monthly_price", "excluded").order_by("sku")) == [
            ("ENTERPRISEPACK", Decimal("31.20"), False),
            ("STANDARDPACK", None, True),
        ]
        row = FamilySnapshot.objects.get(customer=world.customer, as_of=D)
        assert (row.sold_licenses, row.rec_sold_licenses) == (51, 1)
        text = insights(admin_client, world)
        assert 'data-kind="low_adoption"' not in text
        assert 'data-kind="growth"' in text

    def test_invalid_values_are_named(self, admin_client, world):
        response = admin_client.post("/settings/", {"low_usage_pct": "-1", "currency": "E1R", "sku-TOTAL_FORMS": "0"})
        assert response.status_code == 200
        text = response.content.decode()
        assert "greater than or equal to 0" in text
        assert "three-letter ISO 4217 code" in text
        assert not InsightSettings.objects.exists()


def test_own_subscriptions_page_never_shows_other_sources(admin_client, world):
    world.sub(external_id="OWN-1")
    world.sub(external_id="OTHER-1", source="other_partner")
    world.sub(external_id="DIRECT-1", source="direct")
    text = page(admin_client, f"/customers/{world.customer.pk}/subscriptions/")
    assert re.findall(r"<tr>\s*<td><code>([^<]+)</code></td>", text) == ["OWN-1"]
    assert "OTHER-1" not in text
    assert "DIRECT-1" not in text
