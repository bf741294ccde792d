"""Charts: figures are built in Python with plotly and drawn in the browser by static/js/charts.js
from the JSON the template renders with `json_script` (no inline script, no CDN)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import plotly.graph_objects as go

# One look for every chart of the product.
LAYOUT: dict[str, Any] = {
    "margin": {"l": 48, "r": 16, "t": 32, "b": 40},
    "height": 320,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "#ffffff",
    "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12, "color": "#1f2933"},
    "legend": {"orientation": "h", "y": -0.2},
    "colorway": ["#0b6bcb", "#1b7f4c", "#b25e09", "#7a5af8", "#b42318", "#61707f"],
}
DAY_MS = 86_400_000
# LAYOUT validated by plotly once, as JSON: validating it again for every chart of every page
# took longer than building the chart (no chart sets these keys itself).
LAYOUT_JSON = go.Layout(LAYOUT).to_plotly_json()


def figure_data(figure: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON data for `json_script`, with the product's layout."""
    data: dict[str, Any] = json.loads(figure.to_json())
    data["layout"] |= copy.deepcopy(LAYOUT_JSON)
    return data


def day_axis(dates: list[dt.date]) -> dict[str, Any]:
    """An x axis of days: over less than two weeks plotly would tick hours (over one day,
    milliseconds), so tick each day, and show one lone day between its neighbours."""
    axis: dict[str, Any] = {"type": "date"}
    if (dates[-1] - dates[0]).days < 14:
        axis |= {"dtick": DAY_MS, "tickformat": "%b %-d"}
    if len(dates) == 1:
        axis["range"] = [(dates[0] - dt.timedelta(days=1)).isoformat(), (dates[0] + dt.timedelta(days=1)).isoformat()]
    return axis
