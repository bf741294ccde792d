"""The metric engine against SPEC §2, number by number, and against an independent reference."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Activity, Customer
from metrics.models import FamilySnapshot, PortfolioSnapshot, RecomputeRun, SkuSnapshot, WorkloadSnapshot
from metrics.numbers import pct
from metrics.services import metrics_recompute
from tests import factories
from tests.metrics_reference import reference_metrics, stored_metrics

D = dt.date(2024, 6, 30)
W0 = D - dt.timedelta(days=27)  # the window's first day
DAY = dt.timedelta(days=1)
LONG_AGO = dt.date(2024, 1, 1)


class World:
    """Small hand-made datasets: one customer unless told otherwise."""

    def __init__(self, partner):
        self.partner = partner
        self.customer = factories.CustomerFactory(partner=partner)

    def sub(self, sku="ENTERPRISEPACK", quantity=10, customer=None, **fields):
        return factories.SubscriptionFactory(
            customer=customer or self.customer, product=factories.catalog_product(sku), quantity=quantity, **fields
        )

    def user(self, customer=None):
        return factories.EndUserFactory(customer=customer or self.customer)

    def assign(self, user, subscription, on=LONG_AGO, removed=None, state="active"):
        return factories.AssignmentFactory(
            user=user, subscription=subscription, assigned_on=on, removed_on=removed, state=state
        )

    def act(self, user, workload="exchange", day=D):
        Activity.objects.create(partner=self.partner, user=user, workload=workload, activity_date=day)

    def licensed(self, subscription, active=True, **assignment):
        person = self.user(subscription.customer)
        self.assign(person, subscription, **assignment)
        if active:
            self.act(person)
        return person

    def compute(self, as_of=D):
        metrics_recompute(partner=self.partner, as_of=as_of, trigger="nightly")

    def sku(self, sku="ENTERPRISEPACK", customer=None):
        """(sold, own_sold, assigned, entitled, active) at the SKU grain, or None without a row."""
        row = SkuSnapshot.objects.filter(customer=customer or self.customer, product__sku=sku, as_of=D).values_list(
            "sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users"
        )
        return row.first()

    def workload(self, workload, customer=None):
        row = WorkloadSnapshot.objects.filter(customer=customer or self.customer, workload=workload, as_of=D)
        return row.values_list("entitled_users", "active_users").first()

    def family(self, family="office365", customer=None):
        row = FamilySnapshot.objects.filter(customer=customer or self.customer, family=family, as_of=D)
        return row.values_list(
            "sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users"
        ).first()


@pytest.fixture
def world(partner):
    return World(partner)


class TestPct:
    @pytest.mark.parametrize(
        ("numerator", "denominator", "expected"),
        [
            (7, 8, "87.5"),
            (1, 3, "33.3"),
            (2, 3, "66.7"),
            (1, 16, "6.3"),  # 6.25: half away from zero
            (1, 80, "1.3"),  # 1.25
            (1, 400, "0.3"),  # 0.25
            (1, 2000, "0.1"),  # 0.05 exactly: a float would round it down
            (1, 2001, "0.0"),
            (0, 5, "0.0"),
            (5, 5, "100.0"),
            (5, 4, "125.0"),
            (2001, 1000, "200.1"),
            (3, 0, ""),
            (0, 0, ""),
        ],
    )
    def test_rounds_half_away_from_zero_from_the_exact_ratio(self, numerator, denominator, expected):
        assert pct(numerator, denominator) == expected


class TestCountedSubscriptions:
    @pytest.mark.parametrize("status", ["grace", "disabled", "preprovisioned", "suspended", "cancelled", "expired"])
    def test_only_active_subscriptions_are_sold_and_assigned(self, world, status):
        world.sub(quantity=4)
        other = world.sub(quantity=6, status=status)
        world.licensed(other)
        world.compute()
        assert world.sku() == (4, 4, 0, 0, 1)

    def test_trials_are_neither_sold_nor_entitled(self, world):
        trial = world.sub(quantity=25, is_trial=True)
        world.licensed(trial)
        world.compute()
        assert world.sku() == (0, 0, 0, 0, 1)

    @pytest.mark.parametrize(
        ("start", "end", "counted"),
        [
            (None, None, True),
            (D, None, True),
            (D + DAY, None, False),
            (None, D, True),
            (None, D - DAY, False),
            (D, D, True),
            (D + DAY, D - DAY, False),  # an end before its start is never counted
        ],
    )
    def test_start_and_end_dates(self, world, start, end, counted):
        world.sub(quantity=3, start_date=start, end_date=end)
        world.compute()
        assert world.sku() == ((3, 3, 0, 0, 0) if counted else None)

    def test_sold_counts_every_source_and_own_sold_only_own(self, world):
        world.sub(quantity=10, source="own")
        world.sub(quantity=5, source="other_partner")
        world.sub(quantity=2, source="direct")
        world.compute()
        assert world.sku() == (17, 10, 0, 0, 0)


class TestAssignments:
    @pytest.mark.parametrize(
        ("assigned_on", "removed_on", "current"),
        [
            (D, None, True),
            (D + DAY, None, False),
            (LONG_AGO, D + DAY, True),
            (LONG_AGO, D, False),  # removed on D is no longer current at D
        ],
    )
    def test_current_assignments(self, world, assigned_on, removed_on, current):
        subscription = world.sub()
        world.licensed(subscription, active=False, on=assigned_on, removed=removed_on)
        world.compute()
        assert world.sku() == ((10, 10, 1, 1, 0) if current else (10, 10, 0, 0, 0))

    @pytest.mark.parametrize(
        ("state", "assigned", "entitled"),
        [("active", 1, 1), ("suspended", 1, 0), ("upgraded", 0, 0), ("cancelled", 0, 0)],
    )
    def test_states(self, world, state, assigned, entitled):
        subscription = world.sub()
        world.licensed(subscription, active=False, state=state)
        world.compute()
        assert world.sku() == (10, 10, assigned, entitled, 0)

    def test_a_user_with_two_counted_subscriptions_is_assigned_twice_and_entitled_once(self, world):
        first, second = world.sub(quantity=5), world.sub(quantity=5)
        person = world.licensed(first)
        world.assign(person, second)
        world.compute()
        assert world.sku() == (10, 10, 2, 1, 1)

    def test_more_assignments_than_seats_deploys_above_100(self, world):
        subscription = world.sub(quantity=2)
        for _ in range(3):
            world.licensed(subscription, active=False)
        world.compute()
        sold, _, assigned, _, _ = world.sku()
        assert pct(assigned, sold) == "150.0"


class TestActivityWindow:
    @pytest.mark.parametrize(
        ("day", "active"), [(D, 1), (W0, 1), (D + DAY, 0), (W0 - DAY, 0), (D - dt.timedelta(days=28), 0)]
    )
    def test_window_edges(self, world, day, active):
        person = world.licensed(world.sub(), active=False)
        world.act(person, "teams", day)
        world.compute()
        assert world.sku() == (10, 10, 1, 1, active)

    @pytest.mark.parametrize(
        ("assigned_on", "removed_on", "active"),
        [
            (LONG_AGO, W0, 0),  # removed on the window's first day: no overlap
            (LONG_AGO, W0 + DAY, 1),
            (D, None, 1),
            (D + DAY, None, 0),
        ],
    )
    def test_assignment_must_overlap_the_window(self, world, assigned_on, removed_on, active):
        person = world.user()
        world.assign(person, world.sub(), on=assigned_on, removed=removed_on)
        world.act(person, "teams", W0)  # activity may fall outside the assignment's own dates
        world.compute()
        assert world.sku()[4] == active

    def test_activity_must_be_on_a_workload_the_sku_includes(self, world):
        e1 = world.sub(sku="STANDARDPACK")  # no office_apps in E1
        person = world.licensed(e1, active=False)
        world.act(person, "office_apps")
        world.act(person, "dynamics365")
        world.compute()
        assert world.sku("STANDARDPACK") == (10, 10, 1, 1, 0)

    def test_yammer_counts_like_any_workload_at_the_sku_grain(self, world):
        person = world.licensed(world.sub(sku="STANDARDPACK"), active=False)
        world.act(person, "yammer")
        world.compute()
        assert world.sku("STANDARDPACK") == (10, 10, 1, 1, 1)

    def test_any_assignment_state_counts_for_activity(self, world):
        subscription = world.sub()
        for state in ("suspended", "upgraded", "cancelled"):
            world.licensed(subscription, state=state)
        world.compute()
        assert world.sku() == (10, 10, 1, 0, 3)


class TestUsageAbove100:
    """The source document's reasons why usage passes 100% (SPEC §2)."""

    def test_turnover_license_moved_to_a_new_user(self, world):
        subscription = world.sub(quantity=1)
        leaver = world.licensed(subscription, removed=D - dt.timedelta(days=10))
        world.act(leaver, "exchange", D - dt.timedelta(days=15))
        world.licensed(subscription, on=D - dt.timedelta(days=10))
        world.compute()
        sold, _, assigned, entitled, active = world.sku()
        assert (sold, assigned, entitled, active) == (1, 1, 1, 2)
        assert pct(active, entitled) == "200.0"

    @pytest.mark.parametrize("status", ["grace", "disabled", "preprovisioned"])
    def test_second_subscription_of_the_sku_not_counted(self, world, status):
        world.licensed(world.sub(quantity=4))
        lapsed = world.sub(quantity=4, status=status)
        world.licensed(lapsed)
        world.licensed(lapsed)
        world.compute()
        assert world.sku() == (4, 4, 1, 1, 3)
        assert pct(3, 1) == "300.0"

    def test_trial_users_are_active_but_never_entitled(self, world):
        world.licensed(world.sub(quantity=2))
        trial = world.sub(quantity=10, is_trial=True)
        world.licensed(trial)
        world.compute()
        assert world.sku() == (2, 2, 1, 1, 2)

    def test_yammer_without_a_license_at_the_workload_grain(self, world):
        world.licensed(world.sub(quantity=1))  # one licensed user, active on exchange
        for _ in range(4):
            world.act(world.user(), "yammer")  # unlicensed: Yammer is license-free
        world.compute()
        assert world.workload("yammer") == (1, 4)
        assert world.workload("exchange") == (1, 1)
        assert world.sku() == (1, 1, 1, 1, 1)  # no licence, no SKU-grain activity


class TestWorkloadGrain:
    def test_entitled_through_every_sku_that_includes_the_workload(self, world):
        e1, exchange_only = world.sub(sku="STANDARDPACK"), world.sub(sku="EXCHANGESTANDARD")
        world.licensed(e1, active=False)
        world.licensed(exchange_only, active=False)
        world.compute()
        assert world.workload("exchange") == (2, 0)
        assert world.workload("teams") == (1, 0)
        assert world.workload("office_apps") is None

    def test_active_needs_a_sku_including_that_workload(self, world):
        person = world.licensed(world.sub(sku="EXCHANGESTANDARD"), active=False)
        world.act(person, "teams")
        world.act(person, "exchange")
        world.compute()
        assert world.workload("exchange") == (1, 1)
        assert world.workload("teams") is None

    def test_other_families_never_count(self, world):
        person = world.licensed(world.sub(sku="POWER_BI_PRO"), active=False)
        world.act(person, "teams")
        world.compute()
        assert world.sku("POWER_BI_PRO") is None
        assert world.workload("teams") is None
        assert not FamilySnapshot.objects.filter(family="other").exists()


class TestFamilyAndPortfolio:
    def test_family_sums_licenses_and_counts_distinct_users(self, world):
        e3, e1 = world.sub(quantity=10), world.sub(sku="STANDARDPACK", quantity=5)
        both = world.licensed(e3)
        world.assign(both, e1)
        world.licensed(e1, active=False)
        dynamics = world.sub(sku="DYN365_ENTERPRISE_SALES", quantity=3, source="direct")
        world.licensed(dynamics, active=False)
        world.compute()
        assert world.family("office365") == (15, 15, 3, 2, 1)
        assert world.family("dynamics365") == (3, 0, 1, 1, 0)

    def test_portfolio_is_a_ratio_of_sums_not_a_mean_of_ratios(self, world, partner):
        big, small = world.customer, factories.CustomerFactory(partner=partner)
        big_sub, small_sub = world.sub(quantity=100, customer=big), world.sub(quantity=1, customer=small)
        for _ in range(90):
            world.licensed(big_sub, active=False)
        world.licensed(small_sub)
        world.compute()
        row = PortfolioSnapshot.objects.get(partner=partner, family="office365", as_of=D)
        assert (row.sold_licenses, row.assigned_licenses, row.entitled_users, row.active_users, row.customers) == (
            101,
            91,
            91,
            1,
            2,
        )
        assert (row.deployment_pct, row.usage_pct) == ("90.1", "1.1")  # not the mean of 0.0% and 100.0%

    def test_percentages_are_empty_when_the_denominator_is_zero(self, world):
        person = world.user()
        world.assign(person, world.sub(status="grace"))
        world.act(person)
        world.compute()
        row = FamilySnapshot.objects.get(customer=world.customer, as_of=D)
        assert (row.sold_licenses, row.entitled_users, row.active_users) == (0, 0, 1)
        assert (row.deployment_pct, row.usage_pct) == ("", "")


class TestRuns:
    def test_recomputing_a_date_replaces_it_and_gives_identical_rows(self, world, partner):
        world.licensed(world.sub())
        world.compute()
        first = stored_metrics(partner, D)
        world.compute()
        assert stored_metrics(partner, D) == first
        assert SkuSnapshot.objects.filter(as_of=D).count() == 1
        run = RecomputeRun.objects.get(partner=partner, as_of=D)
        assert (run.status, run.attempts, run.published_at is not None) == ("succeeded", 1, True)

    def test_recompute_reflects_changed_data(self, world):
        subscription = world.sub(quantity=10)
        world.compute()
        subscription.quantity = 12
        subscription.save()
        world.compute()
        assert world.sku() == (12, 12, 0, 0, 0)

    def test_each_partner_is_computed_alone(self, world, other_partner):
        world.licensed(world.sub())
        theirs = World(other_partner)
        theirs.licensed(theirs.sub(quantity=99))
        world.compute()
        assert SkuSnapshot.objects.filter(partner=other_partner).count() == 0

    def test_a_constant_number_of_statements_per_date(self, partner):
        """The same statements for 10 and for 200 customers, measured in one test."""
        counts = {}
        for customers in (10, 200):
            while Customer.objects.filter(partner=partner).count() < customers:
                world = World(partner)
                world.licensed(world.sub())
            metrics_recompute(partner=partner, as_of=D, trigger="nightly")  # the ledger row exists for both sizes
            with CaptureQueriesContext(connection) as queries:
                metrics_recompute(partner=partner, as_of=D, trigger="nightly")
            assert SkuSnapshot.objects.filter(as_of=D).count() == customers
            counts[customers] = len(queries.captured_queries)
        assert counts[10] == counts[200] <= 40


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="work_mem is a PostgreSQL setting")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # its own transaction, not a savepoint
def test_the_recompute_has_its_work_mem_for_its_own_transaction_only(world, settings):
    from django.db import transaction

    from metrics import engine

    settings.METRICS_WORK_MEM = "64MB"
    world.licensed(world.sub())
    with connection.cursor() as cursor:
        cursor.execute("SHOW work_mem")
        default = cursor.fetchone()[0]
        with transaction.atomic():
            engine.compute_date(partner_id=world.partner.pk, as_of=D)
            cursor.execute("SHOW work_mem")
            assert cursor.fetchone()[0] == "64MB"
        cursor.execute("SHOW work_mem")
        assert cursor.fetchone()[0] == default != "64MB"


# Random datasets: the engine must equal the reference implementation everywhere.
SKUS = ["ENTERPRISEPACK", "STANDARDPACK", "EXCHANGESTANDARD", "DYN365_ENTERPRISE_SALES", "POWER_BI_PRO"]
# Any day around the window, with its edges (D+1, D, D-27, D-28) drawn more often.
offset = st.one_of(
    st.sampled_from([D + DAY, D, W0, W0 - DAY]),
    st.integers(min_value=-40, max_value=5).map(lambda n: D + dt.timedelta(days=n)),
)
dataset = st.fixed_dictionaries(
    {
        "subs": st.lists(
            st.tuples(
                st.integers(0, 1),  # customer
                st.sampled_from(SKUS),
                st.integers(0, 5),  # quantity
                st.sampled_from(["active", "active", "grace", "disabled", "preprovisioned", "expired"]),
                st.booleans(),  # trial
                st.sampled_from(["own", "other_partner", "direct"]),
                st.one_of(st.none(), offset),
                st.one_of(st.none(), offset),
            ),
            min_size=1,
            max_size=5,
        ),
        "users": st.lists(st.integers(0, 1), min_size=1, max_size=6),
        "assignments": st.lists(
            st.tuples(
                st.integers(0, 5),
                st.integers(0, 4),
                offset,
                st.one_of(st.none(), offset),
                st.sampled_from(["active", "active", "suspended", "upgraded", "cancelled"]),
            ),
            max_size=10,
        ),
        "activity": st.lists(
            st.tuples(
                st.integers(0, 5),
                st.sampled_from(["exchange", "teams", "yammer", "office_apps", "dynamics365"]),
                offset,
            ),
            max_size=15,
        ),
    }
)


def add_people(world: World, customers: list, subs: list, data: dict) -> None:
    """The random dataset's users (by customer), their assignments (those within one customer,
    each natural key once) and their activity (each fact once)."""
    users = [world.user(customers[c]) for c in data["users"]]
    seen = set()
    for u, s, on, removed, state in data["assignments"]:
        user, sub = users[u % len(users)], subs[s % len(subs)]
        if user.customer_id == sub.customer_id and (user.pk, sub.pk, on) not in seen:
            seen.add((user.pk, sub.pk, on))
            world.assign(user, sub, on=on, removed=removed, state=state)
    for user, workload, day in {(users[u % len(users)], w, day) for u, w, day in data["activity"]}:
        world.act(user, workload, day)


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=dataset)
def test_engine_equals_the_reference_implementation_on_random_data(partner, data):
    from django.db import transaction

    sid = transaction.savepoint()
    try:
        world = World(partner)
        customers = [world.customer, factories.CustomerFactory(partner=partner)]
        subs = [
            world.sub(
                sku,
                quantity,
                customer=customers[c],
                status=status,
                is_trial=trial,
                source=source,
                start_date=start,
                end_date=end,
            )
            for c, sku, quantity, status, trial, source, start, end in data["subs"]
        ]
        add_people(world, customers, subs, data)
        world.compute()
        assert stored_metrics(partner, D) == reference_metrics(partner, D)
    finally:
        transaction.savepoint_rollback(sid)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (0, 10, "0-20"),
        (199, 1000, "0-20"),  # 19.9% stays below 20 even though it rounds to 19.9
        (1999, 10000, "0-20"),  # 19.99% rounds to 20.0 on a page, but its band is [0, 20)
        (2, 10, "20-40"),
        (59, 100, "40-60"),
        (6, 10, "60-80"),
        (999, 1000, "80-100"),
        (10, 10, "100+"),
        (13, 10, "100+"),
        (0, 0, "none"),
        (5, 0, "none"),
    ],
)
def test_bands_use_the_exact_ratio(numerator, denominator, expected):
    from metrics.numbers import band

    assert band(numerator, denominator) == expected
