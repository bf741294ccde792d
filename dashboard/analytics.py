"""The portfolio analytics page (SPEC §2 portfolio grain, §3, §8): what it reads and draws.

A fixed number of queries whatever the portfolio's size: the portfolio grain and its trend come
from `PortfolioSnapshot`, the distribution and scatter from one read of the family grain (one row
per customer and family), the unused-license ranking aggregated in SQL, the customer table paged.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

import plotly.graph_objects as go
from django.core.paginator import Page, Paginator
from django.db import models
from django.db.models import QuerySet
from django.db.models.functions import Lower

from accounts.models import Partner
from core.charts import figure_data
from customers.models import Family, Subscription, family_order
from customers.selectors import customer_count as customers_total
from customers.selectors import renewal_list
from dashboard.charts import TREND_DAYS, percent_trend_figure
from metrics.filters import AnalyticsFilterForm, PortfolioFilters
from metrics.models import FamilySnapshot, InsightSettings, PortfolioSnapshot
from metrics.numbers import BAND_LABELS, BANDS, band, pct
from metrics.recommendations import Kind
from metrics.selectors import (
    AsOf,
    UnusedLine,
    as_of_choice,
    inactive_user_summary,
    insight_settings,
    matching_customer_ids,
    matching_family_rows,
    portfolio_snapshot_list,
    recommendation_list,
    unused_ranking,
)

CUSTOMERS_PER_PAGE = 50
# A customer's family row as the charts read it: id, name, family, sold, assigned, entitled, active.
FamilyRow = tuple[int, str, str, int, int, int, int]
RowT = TypeVar("RowT", bound=models.Model)
TOP_UNUSED = 10
RENEWALS_SHOWN = 20


GRAINS = (
    ("sku", "customer and SKU"),
    ("workload", "customer and workload"),
    ("family", "customer and family"),
)


@dataclass
class AnalyticsPage:
    """What `/analytics/` shows. The panels are filled for a date with snapshots; every panel but
    the headline and the trend (the whole portfolio) reads the customers that match `filters`."""

    form: AnalyticsFilterForm
    as_of: AsOf
    filters: PortfolioFilters
    settings: InsightSettings
    trend_days: int
    export_query: str
    trend_choices: tuple[int, ...] = TREND_DAYS
    grains: tuple[tuple[str, str], ...] = GRAINS
    portfolio: list[PortfolioSnapshot] = field(default_factory=list)
    trend_chart: dict[str, Any] | None = None
    customer_count: int = 0
    bands: list[dict[str, Any]] = field(default_factory=list)
    distribution_chart: dict[str, Any] | None = None
    scatter_chart: dict[str, Any] | None = None
    unused: list[UnusedLine] = field(default_factory=list)
    recommendation_counts: list[tuple[Kind, int]] = field(default_factory=list)
    renewals: list[Subscription] = field(default_factory=list)
    renewal_total: int = 0
    inactive_total: int = 0
    inactive_cost: Decimal | None = None
    page: Page[FamilySnapshot] | None = None


def analytics_page(
    *, partner: Partner, form: AnalyticsFilterForm, requested: str | None, trend: str, page_number: str | None
) -> AnalyticsPage:
    """The analytics page at the requested snapshot date (else the latest) with the form's filters."""
    settings = insight_settings(partner=partner)
    filters = form.filters() if form.is_bound and form.is_valid() else PortfolioFilters()
    page = AnalyticsPage(
        form=form,
        as_of=as_of_choice(partner=partner, requested=requested),
        filters=filters,
        settings=settings,
        trend_days=int(trend) if trend.isdigit() and int(trend) in TREND_DAYS else 90,
        export_query=urlencode(filters.as_query()),
    )
    if page.as_of.date is not None:
        _fill_panels(page, partner=partner, as_of=page.as_of.date, page_number=page_number)
    return page


def _fill_panels(page: AnalyticsPage, *, partner: Partner, as_of: dt.date, page_number: str | None) -> None:
    filters, settings = page.filters, page.settings
    ids = matching_customer_ids(partner=partner, as_of=as_of, filters=filters, settings=settings)
    family_rows = list(
        _of_customers(matching_family_rows(partner=partner, as_of=as_of, filters=filters), ids).values_list(
            "customer_id", "customer__name", "family", *_NUMBERS
        )
    )
    page.customer_count = customers_total(partner=partner) if ids is None else len(ids)
    inactive = inactive_user_summary(partner=partner, as_of=as_of, days=settings.inactivity_days)
    if ids is not None:
        matching = set(ids)
        inactive = {pk: value for pk, value in inactive.items() if pk in matching}
    inactive_costs = [cost for _, cost in inactive.values() if cost is not None]
    renewals = _of_customers(renewal_list(partner=partner, as_of=as_of), ids)
    page.bands = band_table(family_rows, families=filters.families, customer_count=page.customer_count)
    page.portfolio = sorted(portfolio_snapshot_list(partner=partner, span=(as_of, as_of)), key=family_order)
    page.trend_chart = trend_figure(partner=partner, as_of=as_of, days=page.trend_days)
    page.distribution_chart = distribution_figure(page.bands) if family_rows else None
    page.scatter_chart = scatter_figure(family_rows)
    page.unused = unused_ranking(partner=partner, as_of=as_of, customer_ids=ids, limit=TOP_UNUSED)
    page.recommendation_counts = recommendation_counts(
        partner=partner, as_of=as_of, settings=settings, filters=filters, customer_ids=ids
    )
    page.renewals = list(renewals[:RENEWALS_SHOWN])
    page.renewal_total = renewals.count()
    page.inactive_total = sum(users for users, _ in inactive.values())
    page.inactive_cost = sum(inactive_costs, Decimal(0)) if inactive_costs else None
    page.page = customer_page(partner=partner, as_of=as_of, filters=filters, customer_ids=ids, number=page_number)


_NUMBERS = ("sold_licenses", "assigned_licenses", "entitled_users", "active_users")


def _of_customers(rows: QuerySet[RowT, Any], ids: list[int] | None) -> QuerySet[RowT, Any]:
    """`rows` of the matching customers (all of them when `ids` is None)."""
    return rows if ids is None else rows.filter(customer_id__in=ids)


def band_table(rows: list[FamilyRow], *, families: tuple[str, ...], customer_count: int) -> list[dict[str, Any]]:
    """Per family: how many customers fall in each usage and deployment band of SPEC §8; customers
    without a row of the family (or without its denominator) are "no data"."""
    table = []
    for family in families:
        of_family = [row for row in rows if row[2] == family]
        usage = Counter(band(active, entitled) for *_, entitled, active in of_family)
        deployment = Counter(band(assigned, sold) for *_, sold, assigned, _, _ in of_family)
        usage["none"] += customer_count - len(of_family)
        deployment["none"] += customer_count - len(of_family)
        table.append(
            {
                "family": Family(family).label,
                "bands": [(key, BAND_LABELS[key], usage[key], deployment[key]) for key in BANDS],
            }
        )
    return table


def distribution_figure(bands: list[dict[str, Any]]) -> dict[str, Any]:
    """Customers per usage band and per deployment band (a `band_table`), a bar per family."""
    figure = go.Figure()
    labels = [BAND_LABELS[key] for key in BANDS]
    for entry in bands:
        figure.add_bar(name=f"{entry['family']} usage", x=labels, y=[usage for *_, usage, _ in entry["bands"]])
        figure.add_bar(
            name=f"{entry['family']} deployment", x=labels, y=[deployment for *_, deployment in entry["bands"]]
        )
    figure.update_layout(barmode="group", yaxis_title="Customers")
    return figure_data(figure)


def scatter_figure(rows: list[FamilyRow]) -> dict[str, Any] | None:
    """One point per customer and family: deployment % against usage %, sized by sold licenses."""
    points: dict[str, list[tuple[str, int, float, float]]] = {}
    for _, name, family, sold, assigned, entitled, active in rows:
        if sold and entitled:
            points.setdefault(family, []).append((name, sold, float(pct(assigned, sold)), float(pct(active, entitled))))
    if not points:
        return None
    largest = max(sold for series in points.values() for _, sold, _, _ in series)
    figure = go.Figure()
    for family in points:
        figure.add_scatter(
            name=Family(family).label,
            mode="markers",
            marker={"sizemode": "area", "sizeref": largest / 900, "sizemin": 4},
            hovertemplate="%{text}<br>deployment %{x}% · usage %{y}%<br>%{customdata} sold<extra></extra>",
        )
    figure.update_layout(xaxis_title="Deployment %", yaxis_title="Usage %", xaxis_rangemode="tozero")
    data = figure_data(figure)
    # The points join the traces as plain lists: plotly validates a list element by element,
    # which at 2,000 customers took most of the page's time.
    for trace, series in zip(data["data"], points.values(), strict=True):
        trace |= {
            "x": [deployment for *_, deployment, _ in series],
            "y": [usage for *_, usage in series],
            "text": [name for name, *_ in series],
            "customdata": [sold for _, sold, *_ in series],
        }
        trace["marker"]["size"] = trace["customdata"]
    return data


def trend_figure(*, partner: Partner, as_of: dt.date, days: int) -> dict[str, Any] | None:
    """The portfolio's deployment % and usage % per family over the `days` days up to `as_of`."""
    span = (as_of - dt.timedelta(days=days - 1), as_of)
    return percent_trend_figure(portfolio_snapshot_list(partner=partner, span=span).order_by("family", "as_of"))


def recommendation_counts(
    *,
    partner: Partner,
    as_of: dt.date,
    settings: InsightSettings,
    filters: PortfolioFilters,
    customer_ids: list[int] | None,
) -> list[tuple[Kind, int]]:
    """How many customers have each kind of recommendation at `as_of` (in the chosen families)."""
    allowed = None if customer_ids is None else set(customer_ids)
    families = set(filters.families) | {""}
    found = {
        (r.kind, r.customer_id)
        for r in recommendation_list(partner=partner, as_of=as_of, settings=settings)
        if r.family in families and (allowed is None or r.customer_id in allowed)
    }
    counts = Counter(kind for kind, _ in found)
    return [(kind, counts[kind]) for kind in Kind]


def customer_page(
    *, partner: Partner, as_of: dt.date, filters: PortfolioFilters, customer_ids: list[int] | None, number: str | None
) -> Page[FamilySnapshot]:
    """The matching customers' family-grain rows, by name, a page at a time."""
    rows = (
        _of_customers(matching_family_rows(partner=partner, as_of=as_of, filters=filters), customer_ids)
        .select_related("customer")
        .order_by(Lower("customer__name"), "customer__name", "customer__external_id", "family")
    )
    return Paginator(rows, CUSTOMERS_PER_PAGE).get_page(number)
