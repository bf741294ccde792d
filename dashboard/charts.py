"""The charts of the dashboard's pages: trends of deployment % and usage %, built on the
product's chart look (core.charts)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from core.charts import day_axis, figure_data
from customers.models import Family
from metrics.numbers import pct

TREND_DAYS = (30, 90, 365)  # the trend charts' choices of days


def chart_pct(numerator: int, denominator: int) -> float | None:
    """A chart point: the pages' own rounded figure (`pct`); undefined is a gap."""
    figure = pct(numerator, denominator)
    return float(figure) if figure else None


def percent_trend_figure(rows: Iterable[Any]) -> dict[str, Any] | None:
    """Deployment % and usage % per family over time, from snapshot rows (family grain or
    portfolio grain) ordered by family and date; None without rows."""
    series: dict[str, list[Any]] = {}
    for row in rows:
        series.setdefault(row.family, []).append(row)
    if not series:
        return None
    dates = sorted({p.as_of for points in series.values() for p in points})
    mode = "lines+markers" if len(dates) == 1 else "lines"  # a line through one point is invisible
    figure = go.Figure()
    for family, points in series.items():
        label = Family(family).label
        x = [p.as_of.isoformat() for p in points]
        deployment = [chart_pct(p.assigned_licenses, p.sold_licenses) for p in points]
        usage = [chart_pct(p.active_users, p.entitled_users) for p in points]
        figure.add_scatter(x=x, y=deployment, mode=mode, name=f"{label} deployment %")
        figure.add_scatter(x=x, y=usage, mode=mode, name=f"{label} usage %", line={"dash": "dot"})
    figure.update_layout(yaxis_title="%", yaxis_rangemode="tozero", hovermode="x unified", xaxis=day_axis(dates))
    return figure_data(figure)
