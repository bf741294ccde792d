"""Charts: figures are built in Python with plotly and drawn in the browser by static/js/charts.js
from the JSON the template renders with `json_script` (no inline script, no CDN)."""

from __future__ import annotations

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


def figure_data(figure: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON data for `json_script`, with the product's layout."""
    figure.update_layout(**LAYOUT)
    return json.loads(figure.to_json())
