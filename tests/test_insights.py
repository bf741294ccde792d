"""Recommendations (SPEC §3), excluded SKUs and inactive licensed users (SPEC §8)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import SupportRequest
from metrics.models import FamilySnapshot, InsightSettings, SkuSetting
from metrics.recommendations import Kind
from metrics.selectors import inactive_user_list, inactive_user_summary, insight_settings, recommendation_list
from tests import factories
from tests.metrics_reference import reference_inactive
from tests.test_metrics import LONG_AGO, W0, D, World, add_people

DAY = dt.timedelta(days=1)


def family_row(partner, customer, sold=0, assigned=0, entitled=0, active=0, family="office365"):
    numbers = {"sold_licenses": sold, "assigned_licenses": assigned, "entitled_users": entitled, "active_users": active}
    return FamilySnapshot.objects.create(
        partner=partner,
        customer=customer,
        family=family,
        as_of=D,
        **numbers,
        **{f"rec_{name}": value for name, value in numbers.items()},
    )


def support(partner):
    return {key for key in kinds(partner) if key[1] == Kind.SUPPORT_LOAD}


def kinds(partner, settings=None):
    found = recommendation_list(partner=partner, as_of=D, settings=settings or insight_settings(partner=partner))
    return {(r.customer_id, r.kind, r.family) for r in found}


@pytest.fixture
def customer(partner):
    return factories.CustomerFactory(partner=partner)


class TestLowAdoption:
    @pytest.mark.parametrize(("active", "fires"), [(5, True), (6, False), (10, False)])
    def test_usage_below_60_percent(self, partner, customer, active, fires):
        family_row(partner, customer, sold=10, assigned=10, entitled=10, active=active)
        assert ((customer.pk, Kind.LOW_ADOPTION, "office365") in kinds(partner)) is fires

    @pytest.mark.parametrize(
        ("sold", "assigned", "fires"),
        [
            (20, 15, True),  # 5 unused = max(5, 25% of 20 = 5)
            (20, 16, False),  # 4 unused
            (40, 30, True),  # 10 unused = 25% of 40
            (40, 31, False),  # 9 unused < 10
            (8, 0, True),  # 8 unused ≥ 5 (25% of 8 is only 2)
        ],
    )
    def test_unused_licenses_at_least_max_of_5_and_25_percent(self, partner, customer, sold, assigned, fires):
        family_row(partner, customer, sold=sold, assigned=assigned, entitled=assigned, active=assigned)
        assert ((customer.pk, Kind.LOW_ADOPTION, "office365") in kinds(partner)) is fires

    def test_an_empty_usage_never_triggers(self, partner, customer):
        family_row(partner, customer, sold=3, assigned=3, entitled=0, active=2)
        assert kinds(partner) == set()

    def test_the_facts_name_the_numbers(self, partner, customer):
        family_row(partner, customer, sold=40, assigned=30, entitled=30, active=12)
        [recommendation] = recommendation_list(partner=partner, as_of=D, settings=insight_settings(partner=partner))
        assert recommendation.facts == (
            "usage 40.0% (12 active of 30 users) is below 60%",
            "10 of 40 licenses unused (at least 5 and 25% of those sold)",
        )
        assert "case studies" in recommendation.advice


class TestSupportLoad:
    def requests(self, partner, customer, count, category="howto", day=D):
        for n in range(count):
            SupportRequest.objects.create(
                partner=partner,
                customer=customer,
                external_id=f"R{n}-{day}-{category}",
                opened_on=day,
                category=category,
            )

    @pytest.mark.parametrize(("entitled", "howto", "fires"), [(60, 3, True), (61, 3, False), (20, 2, False)])
    def test_five_per_100_users_and_at_least_3(self, partner, customer, entitled, howto, fires):
        family_row(partner, customer, sold=entitled, assigned=entitled, entitled=entitled, active=entitled)
        self.requests(partner, customer, howto)
        assert ((customer.pk, Kind.SUPPORT_LOAD, "") in kinds(partner)) is fires

    def test_only_how_to_requests_inside_the_window_count(self, partner, customer):
        family_row(partner, customer, sold=20, assigned=20, entitled=20, active=20)
        self.requests(partner, customer, 2, day=W0)
        self.requests(partner, customer, 5, day=W0 - DAY)  # outside W(D)
        self.requests(partner, customer, 5, day=D + DAY)  # after D
        self.requests(partner, customer, 5, category="incident")
        assert support(partner) == set()
        self.requests(partner, customer, 1, day=D)
        assert support(partner) == {(customer.pk, Kind.SUPPORT_LOAD, "")}

    def test_judged_once_per_customer_over_all_families(self, partner, customer):
        family_row(partner, customer, sold=40, assigned=40, entitled=40, active=40)
        family_row(partner, customer, sold=20, assigned=20, entitled=20, active=20, family="dynamics365")
        self.requests(partner, customer, 3)  # 3 per 60 users = 5 per 100
        assert support(partner) == {(customer.pk, Kind.SUPPORT_LOAD, "")}


class TestGrowth:
    @pytest.mark.parametrize(
        ("assigned", "active", "fires"), [(9, 8, True), (8, 8, False), (10, 7, False), (10, 10, True)]
    )
    def test_deployment_90_and_usage_80(self, partner, customer, assigned, active, fires):
        family_row(partner, customer, sold=10, assigned=assigned, entitled=9, active=active)
        assert ((customer.pk, Kind.GROWTH, "office365") in kinds(partner)) is fires

    def test_partner_thresholds_apply(self, partner, customer):
        family_row(partner, customer, sold=10, assigned=9, entitled=10, active=8)
        assert Kind.GROWTH in {kind for _, kind, _ in kinds(partner)}
        settings = InsightSettings.objects.create(partner=partner, growth_usage_pct=Decimal("80.5"))
        assert kinds(partner, settings) == set()


class TestExcludedSkus:
    def test_excluded_skus_leave_recommendations_but_not_the_numbers(self, partner):
        world = World(partner)
        e3 = world.sub("ENTERPRISEPACK", quantity=10)
        free = world.sub("STANDARDPACK", quantity=100)
        for _ in range(9):
            world.licensed(e3)
        for _ in range(10):
            world.licensed(free, active=False)
        world.compute()
        assert kinds(partner) == {(world.customer.pk, Kind.LOW_ADOPTION, "office365")}
        SkuSetting.objects.create(partner=partner, sku="STANDARDPACK", excluded=True)
        world.compute()
        row = FamilySnapshot.objects.get(customer=world.customer, as_of=D)
        assert (row.sold_licenses, row.assigned_licenses, row.entitled_users, row.active_users) == (110, 19, 19, 9)
        assert (row.rec_sold_licenses, row.rec_assigned_licenses, row.rec_entitled_users, row.rec_active_users) == (
            10,
            9,
            9,
            9,
        )
        assert kinds(partner) == {(world.customer.pk, Kind.GROWTH, "office365")}


class TestInactiveUsers:
    def listed(self, partner, days=30, customer=None):
        rows = inactive_user_list(partner=partner, as_of=D, days=days, customer=customer)
        return {row.user_id: (row.skus, row.last_activity, row.monthly_cost) for row in rows}

    def test_entitled_users_idle_for_n_days_with_licenses_and_last_activity(self, partner):
        world = World(partner)
        e3, dyn = world.sub("ENTERPRISEPACK"), world.sub("DYN365_ENTERPRISE_SALES")
        busy = world.licensed(e3)
        idle = world.licensed(e3, active=False)
        world.act(idle, "teams", D - 30 * DAY)
        edge = world.licensed(e3, active=False)
        world.act(edge, "sharepoint", D - 29 * DAY)  # the first day of a 30-day period
        never = world.licensed(e3, active=False)
        world.assign(never, dyn)
        wrong_workload = world.licensed(dyn, active=False)
        world.act(wrong_workload, "exchange", D)  # not a workload of Dynamics 365 Sales
        later = world.licensed(e3, active=False)
        world.act(later, "exchange", D + DAY)  # after D: not seen at D
        assert self.listed(partner) == {
            idle.pk: (("ENTERPRISEPACK",), D - 30 * DAY, None),
            never.pk: (("DYN365_ENTERPRISE_SALES", "ENTERPRISEPACK"), None, None),
            wrong_workload.pk: (("DYN365_ENTERPRISE_SALES",), None, None),
            later.pk: (("ENTERPRISEPACK",), None, None),
        }
        assert busy.pk not in self.listed(partner, days=180)
        assert set(self.listed(partner, days=60)) == {never.pk, wrong_workload.pk, later.pk}

    def test_every_period_counts_from_its_first_day_and_the_summary_agrees(self, partner):
        world = World(partner)
        e3 = world.sub("ENTERPRISEPACK")
        last = {days: D - (days - 1) * DAY for days in (30, 60, 90, 180)}  # each period's first day
        users = {}
        for days, first_day in last.items():
            users[(days, "on")] = world.licensed(e3, active=False)
            world.act(users[(days, "on")], "teams", first_day)
            users[(days, "before")] = world.licensed(e3, active=False)
            world.act(users[(days, "before")], "teams", first_day - DAY)
        world.compute()
        for days in (30, 60, 90, 180):
            idle = {key for key, user in users.items() if user.pk in self.listed(partner, days=days)}
            expected = {
                (n, when) for n in last for when in ("on", "before") if last[n] - (when == "before") * DAY < last[days]
            }
            assert idle == expected, days
            assert inactive_user_summary(partner=partner, as_of=D, days=days) == {
                world.customer.pk: (len(expected), None)
            }
        assert self.listed(partner, days=180)[users[(180, "before")].pk] == (("ENTERPRISEPACK",), D - 180 * DAY, None)

    def test_only_entitled_users_are_listed(self, partner):
        world = World(partner)
        e3 = world.sub("ENTERPRISEPACK")
        world.licensed(world.sub("ENTERPRISEPACK", is_trial=True), active=False)
        world.licensed(world.sub("ENTERPRISEPACK", status="grace"), active=False)
        world.licensed(e3, active=False, removed=D)
        world.licensed(e3, active=False, state="suspended")
        world.licensed(world.sub("POWER_BI_PRO"), active=False)  # other family
        world.licensed(e3, active=False, on=D + DAY)  # not yet assigned
        assert self.listed(partner) == {}

    def test_excluded_skus_are_not_alerted_and_prices_give_a_cost(self, partner):
        world = World(partner)
        e3, e1 = world.sub("ENTERPRISEPACK"), world.sub("STANDARDPACK")
        both = world.licensed(e3, active=False)
        world.assign(both, e1)
        only_e1 = world.licensed(e1, active=False)
        SkuSetting.objects.create(partner=partner, sku="ENTERPRISEPACK", monthly_price=Decimal("23.00"))
        SkuSetting.objects.create(partner=partner, sku="STANDARDPACK", monthly_price=Decimal("8.50"), excluded=True)
        assert self.listed(partner) == {both.pk: (("ENTERPRISEPACK",), None, Decimal("23.00"))}
        assert only_e1.pk not in self.listed(partner)
        world.compute()
        assert inactive_user_summary(partner=partner, as_of=D, days=30) == {world.customer.pk: (1, Decimal("23.00"))}

    def test_one_customer_or_the_whole_portfolio(self, partner, other_partner):
        first, second = World(partner), World(partner)
        a = first.licensed(first.sub(), active=False)
        b = second.licensed(second.sub(), active=False)
        World(other_partner).licensed(World(other_partner).sub(), active=False)
        assert set(self.listed(partner)) == {a.pk, b.pk}
        assert set(self.listed(partner, customer=second.customer)) == {b.pk}
        first.compute()
        assert inactive_user_summary(partner=partner, as_of=D, days=30) == {
            first.customer.pk: (1, None),
            second.customer.pk: (1, None),
        }


def test_default_settings_are_the_spec_defaults(partner):
    settings = insight_settings(partner=partner)
    assert settings.pk is None
    assert (settings.low_usage_pct, settings.unused_licenses_min, settings.unused_licenses_pct) == (60, 5, 25)
    assert (settings.howto_per_100_users, settings.howto_requests_min) == (5, 3)
    assert (settings.growth_deployment_pct, settings.growth_usage_pct, settings.inactivity_days) == (90, 80, 30)
    assert LONG_AGO < D


# Random datasets for SPEC §8: activity around every period's first day, exclusions and prices.
PERIOD_EDGES = [D + DAY, D, W0, W0 - DAY] + [
    D - (days - offset) * DAY for days in (30, 60, 90, 180) for offset in (0, 1)
]
inactive_dataset = st.fixed_dictionaries(
    {
        "subs": st.lists(
            st.tuples(
                st.integers(0, 1),  # customer
                st.sampled_from(["ENTERPRISEPACK", "STANDARDPACK", "DYN365_ENTERPRISE_SALES", "POWER_BI_PRO"]),
                st.sampled_from(["active", "active", "active", "grace"]),
                st.sampled_from([False, False, False, True]),  # trial
            ),
            min_size=1,
            max_size=4,
        ),
        "users": st.lists(st.integers(0, 1), min_size=1, max_size=6),
        "assignments": st.lists(
            st.tuples(
                st.integers(0, 5),
                st.integers(0, 3),
                st.sampled_from([LONG_AGO, LONG_AGO, D, D + DAY]),
                st.sampled_from([None, None, None, D, D + DAY]),
                st.sampled_from(["active", "active", "active", "suspended"]),
            ),
            max_size=10,
        ),
        "activity": st.lists(
            st.tuples(
                st.integers(0, 5),
                st.sampled_from(["exchange", "teams", "yammer", "dynamics365"]),
                st.one_of(st.sampled_from(PERIOD_EDGES), st.integers(-200, 2).map(lambda n: D + n * DAY)),
            ),
            max_size=15,
        ),
        "excluded": st.sets(st.sampled_from(["ENTERPRISEPACK", "STANDARDPACK"]), max_size=1),
        "prices": st.dictionaries(
            st.sampled_from(["ENTERPRISEPACK", "STANDARDPACK", "DYN365_ENTERPRISE_SALES"]),
            st.sampled_from([Decimal("0.00"), Decimal("8.50"), Decimal("23.00")]),
        ),
    }
)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=inactive_dataset)
def test_stored_inactive_counts_and_the_list_equal_the_reference_on_random_data(partner, data):
    """The engine's InactiveSnapshot (what pages read) and the per-user list (what CSVs stream)
    both equal a reference written from SPEC §8, for every period."""
    from django.db import transaction

    sid = transaction.savepoint()
    try:
        world = World(partner)
        customers = [world.customer, factories.CustomerFactory(partner=partner)]
        subs = [
            world.sub(sku, customer=customers[c], status=status, is_trial=trial)
            for c, sku, status, trial in data["subs"]
        ]
        add_people(world, customers, subs, data)
        for sku in set(data["prices"]) | data["excluded"]:
            SkuSetting.objects.create(
                partner=partner, sku=sku, monthly_price=data["prices"].get(sku), excluded=sku in data["excluded"]
            )
        world.compute()
        for days in (30, 60, 90, 180):
            expected = reference_inactive(partner, D, days)
            assert inactive_user_summary(partner=partner, as_of=D, days=days) == expected, days
            listed = {}
            for row in inactive_user_list(partner=partner, as_of=D, days=days):
                count, cost = listed.get(row.customer_id, (0, None))
                if row.monthly_cost is not None:
                    cost = (cost or Decimal(0)) + row.monthly_cost
                listed[row.customer_id] = (count + 1, cost)
            assert listed == expected, days
    finally:
        transaction.savepoint_rollback(sid)
