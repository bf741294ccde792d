"""The customer insights page (SPEC §2, §3, §8): what it reads and the charts it draws.

A fixed number of queries whatever the customer's size: snapshots are read per grain for one
date, the trend from the family grain, lists with one statement each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go

from accounts.models import Partner
from core.charts import figure_data
from customers.models import INSIGHT_FAMILIES, Customer, Subscription, Workload, family_order
from customers.selectors import renewal_list
from dashboard.charts import TREND_DAYS, chart_pct, percent_trend_figure
from metrics.explain import Explanation, usage_explanation
from metrics.models import (
    Counts,
    FamilySnapshot,
    InactivityDays,
    InsightSettings,
    SkuSetting,
    SkuSnapshot,
    WorkloadSnapshot,
)
from metrics.recommendations import Recommendation
from metrics.selectors import (
    AsOf,
    InactiveUser,
    as_of_choice,
    family_snapshot_list,
    inactive_user_list,
    inactive_user_summary,
    insight_settings,
    recommendation_list,
    sku_setting_map,
    sku_snapshot_list,
    workload_snapshot_list,
)

INACTIVE_SHOWN = 100  # the page lists this many; the CSV has them all


@dataclass(frozen=True)
class SkuLine:
    snapshot: SkuSnapshot
    monthly_price: Decimal | None

    @property
    def unused_cost(self) -> Decimal | None:
        if self.monthly_price is None:
            return None
        return self.monthly_price * self.snapshot.unused_licenses


@dataclass
class InsightsPage:
    """What `/customers/<id>/insights/` shows; the sections are filled for a date with snapshots."""

    customer: Customer
    as_of: AsOf
    settings: InsightSettings
    trend_days: int
    inactive_days: int
    trend_choices: tuple[int, ...] = TREND_DAYS
    inactive_choices: tuple[int, ...] = tuple(InactivityDays.values)
    families: list[FamilySnapshot] = field(default_factory=list)
    skus: list[SkuLine] = field(default_factory=list)
    workloads: list[WorkloadSnapshot] = field(default_factory=list)
    unused_cost: Decimal | None = None
    recommendations: list[Recommendation] = field(default_factory=list)
    explanation: Explanation | None = None
    renewals: list[Subscription] = field(default_factory=list)
    inactive: list[InactiveUser] = field(default_factory=list)
    inactive_total: int = 0
    inactive_cost: Decimal | None = None
    workload_chart: dict[str, Any] | None = None
    trend_chart: dict[str, Any] | None = None


def insights_page(
    *, partner: Partner, customer: Customer, requested: str | None, trend: str | None, inactive: str | None
) -> InsightsPage:
    """The insights of `customer` at the requested snapshot date (else the latest), with the
    trend's days and the inactivity period chosen in the query string."""
    settings = insight_settings(partner=partner)
    page = InsightsPage(
        customer=customer,
        as_of=as_of_choice(partner=partner, requested=requested),
        settings=settings,
        trend_days=_choice(trend, TREND_DAYS, default=90),
        inactive_days=_choice(inactive, InactivityDays.values, default=settings.inactivity_days),
    )
    if page.as_of.date is not None:
        _fill_sections(page, partner=partner, as_of=page.as_of.date)
    return page


def _choice(value: str | None, allowed: Sequence[int], *, default: int) -> int:
    """A whole number from the query string if it is one of `allowed`, else `default`."""
    return int(value) if value and value.isdigit() and int(value) in allowed else default


def _fill_sections(page: InsightsPage, *, partner: Partner, as_of: dt.date) -> None:
    customer, days = page.customer, (as_of, as_of)
    sku_settings = sku_setting_map(partner=partner)
    page.families = sorted(
        family_snapshot_list(partner=partner, customer=customer, span=days).filter(family__in=INSIGHT_FAMILIES),
        key=family_order,
    )
    page.skus = [
        SkuLine(row, _price(sku_settings, row.product.sku))
        for row in sku_snapshot_list(partner=partner, customer=customer, span=days)
        .filter(product__family__in=INSIGHT_FAMILIES)
        .select_related("product")
        .order_by("product__family", "product__name")
    ]
    page.workloads = sorted(
        workload_snapshot_list(partner=partner, customer=customer, span=days),
        key=lambda w: Workload.values.index(w.workload),
    )
    page.inactive = list(
        inactive_user_list(
            partner=partner, as_of=as_of, days=page.inactive_days, customer=customer, limit=INACTIVE_SHOWN
        )
    )
    page.inactive_total, page.inactive_cost = inactive_user_summary(
        partner=partner, as_of=as_of, days=page.inactive_days, customer=customer
    ).get(customer.pk, (0, None))
    rows: list[Counts] = [*page.families, *(line.snapshot for line in page.skus), *page.workloads]
    costs = [line.unused_cost for line in page.skus if line.unused_cost is not None]
    page.unused_cost = sum(costs, Decimal(0)) if costs else None
    page.recommendations = recommendation_list(
        partner=partner, as_of=as_of, settings=page.settings, customer_ids=[customer.pk]
    )
    if any(row.active_users > row.entitled_users for row in rows):
        page.explanation = usage_explanation(customer=customer, as_of=as_of)
    page.renewals = list(renewal_list(partner=partner, as_of=as_of, customer=customer))
    page.workload_chart = workload_figure(page.workloads) if page.workloads else None
    page.trend_chart = trend_figure(partner=partner, customer=customer, as_of=as_of, days=page.trend_days)


def _price(sku_settings: dict[str, SkuSetting], sku: str) -> Decimal | None:
    setting = sku_settings.get(sku)
    return setting.monthly_price if setting else None


def workload_figure(workloads: list[WorkloadSnapshot]) -> dict[str, Any]:
    """Entitled and active users per workload, usage % on hover."""
    labels = [Workload(w.workload).label for w in workloads]
    usage = [chart_pct(w.active_users, w.entitled_users) for w in workloads]
    figure = go.Figure(
        [
            go.Bar(name="Entitled users", x=labels, y=[w.entitled_users for w in workloads]),
            go.Bar(
                name="Active users (28 days)",
                x=labels,
                y=[w.active_users for w in workloads],
                customdata=[u if u is not None else "—" for u in usage],
                hovertemplate="%{y} active · usage %{customdata}%<extra></extra>",
            ),
        ]
    )
    figure.update_layout(barmode="group", yaxis_title="Users")
    return figure_data(figure)


def trend_figure(*, partner: Partner, customer: Customer, as_of: dt.date, days: int) -> dict[str, Any] | None:
    """Deployment % and usage % per family over the `days` days up to `as_of`."""
    span = (as_of - dt.timedelta(days=days - 1), as_of)
    rows = family_snapshot_list(partner=partner, customer=customer, span=span).filter(family__in=INSIGHT_FAMILIES)
    return percent_trend_figure(rows.order_by("family", "as_of"))
