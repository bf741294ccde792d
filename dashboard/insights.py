"""The customer insights page (SPEC §2, §3, §8): what it reads and the charts it draws.

A fixed number of queries whatever the customer's size: snapshots are read per grain for one
date, the trend from the family grain, lists with one statement each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go

from accounts.models import Partner
from core.charts import figure_data
from customers.models import INSIGHT_FAMILIES, Customer, Workload, family_order
from customers.selectors import renewal_list
from dashboard.charts import chart_pct, percent_trend_figure
from metrics.explain import usage_explanation
from metrics.models import InsightSettings, SkuSetting, SkuSnapshot, WorkloadSnapshot
from metrics.selectors import (
    family_snapshot_list,
    inactive_user_list,
    inactive_user_summary,
    recommendation_list,
    sku_snapshot_list,
    workload_snapshot_list,
)

TREND_DAYS = (30, 90, 365)
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


def insights_context(
    *,
    partner: Partner,
    customer: Customer,
    as_of: dt.date,
    settings: InsightSettings,
    sku_settings: dict[str, SkuSetting],
    trend_days: int,
    inactive_days: int,
) -> dict[str, Any]:
    """Everything the insights page shows of `customer` at `as_of`."""
    day = (as_of, as_of)
    families = sorted(
        family_snapshot_list(partner=partner, customer=customer, span=day).filter(family__in=INSIGHT_FAMILIES),
        key=family_order,
    )
    skus = [
        SkuLine(row, _price(sku_settings, row.product.sku))
        for row in sku_snapshot_list(partner=partner, customer=customer, span=day)
        .filter(product__family__in=INSIGHT_FAMILIES)
        .select_related("product")
        .order_by("product__family", "product__name")
    ]
    workloads = sorted(
        workload_snapshot_list(partner=partner, customer=customer, span=day),
        key=lambda w: Workload.values.index(w.workload),
    )
    inactive = list(
        inactive_user_list(partner=partner, as_of=as_of, days=inactive_days, customer=customer, limit=INACTIVE_SHOWN)
    )
    inactive_total, inactive_cost = inactive_user_summary(
        partner=partner, as_of=as_of, days=inactive_days, customer=customer
    ).get(customer.pk, (0, None))
    over_100 = any(
        r.active_users > r.entitled_users for r in [*families, *(line.snapshot for line in skus), *workloads]
    )
    costs = [line.unused_cost for line in skus if line.unused_cost is not None]
    return {
        "families": families,
        "skus": skus,
        "workloads": workloads,
        "unused_cost": sum(costs) if costs else None,
        "recommendations": recommendation_list(
            partner=partner, as_of=as_of, settings=settings, customer_ids=[customer.pk]
        ),
        "explanation": usage_explanation(customer=customer, as_of=as_of) if over_100 else None,
        "renewals": list(renewal_list(partner=partner, as_of=as_of, customer=customer)),
        "inactive": inactive,
        "inactive_total": inactive_total,
        "inactive_cost": inactive_cost,
        "workload_chart": workload_figure(workloads) if workloads else None,
        "trend_chart": trend_figure(partner=partner, customer=customer, as_of=as_of, days=trend_days),
    }


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
