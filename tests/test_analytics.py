"""The portfolio analytics page (SPEC §2 portfolio grain, §3, §8): numbers, bands, rankings, filters
and a query count independent of the portfolio's size."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.charts import percent_trend_figure
from metrics.models import FamilySnapshot, SkuSetting
from metrics.recommendations import Kind
from metrics.selectors import UnusedLine
from tests import factories
from tests.test_exports import portfolio  # noqa: F401 (fixture)
from tests.test_metrics import D, World


def analytics(client, query: str = ""):
    response = client.get(f"/analytics/{query}")
    assert response.status_code == 200
    return response, html.unescape(response.content.decode())


def card(text: str, family: str) -> dict[str, str]:
    """The headline card of one family, as rendered: metric name -> text."""
    block = text.split(f'data-family="{family}"', 1)[1].split("</article>", 1)[0]
    return dict(re.findall(r'data-metric="(\w+)">([^<]*)<', block))


@pytest.mark.usefixtures("portfolio")
class TestNumbers:
    def test_headline_is_the_portfolio_grain_ratio_of_sums(self, admin_client):
        _, text = analytics(admin_client)
        # Office 365: Beta's E3 (15 sold, 4 assigned, 4 entitled, 5 active) + lower's E1 (2 sold).
        assert card(text, "office365") == {
            "deployment_pct": "23.5%",  # 4 / 17, not the mean of 26.7 and 0.0
            "usage_pct": "125.0%",
            "sold_licenses": "17",
            "own_sold_licenses": "12",
            "assigned_licenses": "4",
            "entitled_users": "4",
            "active_users": "5",
            "unused_licenses": "13",
        }
        assert card(text, "dynamics365")["usage_pct"] == "100.0%"
        assert "2 customers" in text.split('data-family="office365"', 1)[1].split("</h3>", 1)[0]

    def test_bands_count_every_customer_with_no_data_for_the_rest(self, admin_client):
        response, _ = analytics(admin_client)
        bands = {
            entry["family"]: {key: (u, d) for key, _, u, d in entry["bands"]} for entry in response.context["bands"]
        }
        # 4 customers: Beta 125% usage / 26.7% deployment, lower no usage / 0%, Alpha and Empty no row.
        assert bands["Office 365"] == {
            "0-20": (0, 1),
            "20-40": (0, 1),
            "40-60": (0, 0),
            "60-80": (0, 0),
            "80-100": (0, 0),
            "100+": (1, 0),
            "none": (3, 2),
        }
        assert bands["Dynamics 365"]["100+"] == (1, 0)
        assert bands["Dynamics 365"]["60-80"] == (0, 1)
        assert bands["Dynamics 365"]["none"] == (3, 3)

    def test_unused_ranking_with_cost_and_recommendation_counts(self, admin_client, partner, portfolio):
        SkuSetting.objects.create(partner=partner, sku="ENTERPRISEPACK", monthly_price="20.50")
        response, text = analytics(admin_client)
        assert response.context["unused"] == [
            UnusedLine(portfolio["C2"].pk, "Beta GmbH", 11, Decimal("225.50")),
            UnusedLine(portfolio["C0"].pk, "alpha lower", 2, None),
            UnusedLine(portfolio["C1"].pk, "Alpha AG", 1, None),
        ]
        assert "225.50 EUR" in text
        assert dict(response.context["recommendation_counts"]) == {
            Kind.LOW_ADOPTION: 1,
            Kind.SUPPORT_LOAD: 0,
            Kind.GROWTH: 0,
        }
        assert response.context["inactive_total"] == 1  # Beta's fourth E3 user never did anything

    def test_renewals_ending_within_30_days(self, admin_client, partner, portfolio):
        World(partner).sub(customer=portfolio["C0"], quantity=6, end_date=D + dt.timedelta(days=30))
        World(partner).sub(customer=portfolio["C0"], quantity=6, end_date=D + dt.timedelta(days=31))
        response, text = analytics(admin_client)
        assert [(s.customer.name, s.quantity, s.unused) for s in response.context["renewals"]] == [
            ("alpha lower", 6, 6)
        ]
        assert 'data-metric="renewal_total">1<' in text

    def test_the_customer_table_links_to_insights(self, admin_client, portfolio):
        response, text = analytics(admin_client, "?family=office365")
        rows = [(r.customer.external_id, r.family) for r in response.context["page"].object_list]
        assert rows == [("C0", "office365"), ("C2", "office365")]  # A to Z as people read
        assert f'href="/customers/{portfolio["C2"].pk}/insights/?as_of={D}"' in text
        assert 'action="/analytics/export.csv"' in text

    def test_charts_are_drawn_from_json_script(self, admin_client):
        _, text = analytics(admin_client)
        for figure in ("trend-figure", "distribution-figure", "scatter-figure"):
            assert f'data-figure="{figure}"' in text
            assert f'<script id="{figure}" type="application/json">' in text


def trend_row(day: dt.date) -> SimpleNamespace:
    return SimpleNamespace(
        family="office365", as_of=day, assigned_licenses=3, sold_licenses=4, active_users=2, entitled_users=3
    )


def test_a_trend_of_one_day_shows_its_points_on_an_axis_of_days():
    figure = percent_trend_figure([trend_row(D)])
    assert [trace["mode"] for trace in figure["data"]] == ["lines+markers", "lines+markers"]
    assert figure["layout"]["xaxis"]["range"] == [str(D - dt.timedelta(days=1)), str(D + dt.timedelta(days=1))]
    assert figure["layout"]["xaxis"]["dtick"] == 86_400_000  # one tick a day, never hours


def test_a_long_trend_is_lines_on_plotlys_own_date_ticks():
    figure = percent_trend_figure([trend_row(D - dt.timedelta(days=n)) for n in range(30, -1, -1)])
    assert {trace["mode"] for trace in figure["data"]} == {"lines"}
    assert figure["layout"]["xaxis"] == {"type": "date"}


class TestDates:
    def test_a_date_without_snapshot_says_so_and_shows_the_latest(self, admin_client, portfolio):
        _, text = analytics(admin_client, "?as_of=2024-06-01")
        assert f"There is no snapshot for 2024-06-01; showing {D}, the latest date that has one" in text

    def test_no_metrics_yet(self, admin_client, partner):
        factories.CustomerFactory(partner=partner)
        _, text = analytics(admin_client)
        assert "No metrics yet" in text

    def test_invalid_filters_are_named_and_ignored(self, admin_client, portfolio):
        response, text = analytics(admin_client, "?usage_min=x&usage_max=5")
        assert "Some filters were not applied" in text
        assert "Enter a whole number." in text
        assert response.context["customer_count"] == 4


def test_same_queries_for_20_and_2000_customers(admin_client, partner, django_assert_max_num_queries):
    world = World(partner)
    world.licensed(world.sub())
    world.compute()

    def grow(total: int) -> None:
        customers = factories.CustomerFactory.create_batch(total - partner_customers(partner), partner=partner)
        FamilySnapshot.objects.bulk_create(
            FamilySnapshot(
                partner=partner,
                customer=c,
                family="office365",
                as_of=D,
                sold_licenses=10 + n % 7,
                assigned_licenses=n % 11,
                entitled_users=n % 11,
                active_users=n % 5,
                rec_sold_licenses=10 + n % 7,
                rec_assigned_licenses=n % 11,
                rec_entitled_users=n % 11,
                rec_active_users=n % 5,
            )
            for n, c in enumerate(customers)
        )

    counts = []
    for total in (20, 2000):
        grow(total)
        with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(25):
            response = admin_client.get("/analytics/?kind=low_adoption&usage_max=80")
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert response.context["customer_count"] > 1000


def partner_customers(partner) -> int:
    from customers.models import Customer

    return Customer.objects.filter(partner=partner).count()
