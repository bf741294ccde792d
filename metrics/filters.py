"""The portfolio filters the analytics page and its CSV export share (SPEC §5: "same filters as
the page"), and the form that reads them from a query string. The selectors apply them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.db.models import F, Q

from customers.models import INSIGHT_FAMILIES
from metrics.recommendations import Kind


@dataclass(frozen=True)
class PortfolioFilters:
    """Empty fields filter nothing. Ranges are percentages, `min` included and `max` excluded (the
    bands of SPEC §8), compared with the exact ratio on the family grain of `family` (of any
    insight family when none is chosen). `sku` keeps customers that hold it (and, at the SKU grain,
    its rows only); `kind` keeps customers with that recommendation at the date shown."""

    family: str = ""
    sku: str = ""
    usage_min: int | None = None
    usage_max: int | None = None
    deployment_min: int | None = None
    deployment_max: int | None = None
    kind: str = ""

    @property
    def families(self) -> tuple[str, ...]:
        return (self.family,) if self.family else tuple(f.value for f in INSIGHT_FAMILIES)

    @property
    def narrows_customers(self) -> bool:
        ranges = (self.usage_min, self.usage_max, self.deployment_min, self.deployment_max)
        return bool(self.sku or self.kind or any(bound is not None for bound in ranges))

    def as_query(self) -> dict[str, str]:
        """The filters as query-string parameters (links from the page to its export)."""
        fields = ("family", "sku", "usage_min", "usage_max", "deployment_min", "deployment_max", "kind")
        return {name: str(value) for name in fields if (value := getattr(self, name)) not in ("", None)}

    def family_row_conditions(self) -> list[Q]:
        """Conditions on family-grain rows aliased with usage_x100 and deployment_x100 (100 ×
        the numerator): the usage and deployment ranges."""
        ranges = (
            _range("usage_x100", "entitled_users", self.usage_min, self.usage_max),
            _range("deployment_x100", "sold_licenses", self.deployment_min, self.deployment_max),
        )
        return [condition for condition in ranges if condition is not None]


def _range(scaled: str, denominator: str, low: int | None, high: int | None) -> Q | None:
    """low ≤ 100 × numerator / denominator < high in integers (`scaled` is 100 × numerator); a
    bound asks for a defined percentage. None when neither bound is set."""
    bounds = []
    if low is not None:
        bounds.append(Q(**{f"{scaled}__gte": F(denominator) * low}))
    if high is not None:
        bounds.append(Q(**{f"{scaled}__lt": F(denominator) * high}))
    return Q(*bounds, **{f"{denominator}__gt": 0}) if bounds else None


class AnalyticsFilterForm(forms.Form):
    """The analytics page's filters (GET), shared by its CSV export. Ranges are percentages,
    "from" included and "to" excluded, on the exact ratio."""

    as_of = forms.DateField(required=False, label="As of", input_formats=["%Y-%m-%d"])
    family = forms.ChoiceField(
        choices=[("", "All families"), *((f.value, f.label) for f in INSIGHT_FAMILIES)], required=False
    )
    sku = forms.ChoiceField(choices=[("", "All SKUs")], required=False, label="SKU")
    usage_min = forms.IntegerField(required=False, min_value=0, max_value=100_000, label="Usage from %")
    usage_max = forms.IntegerField(required=False, min_value=0, max_value=100_000, label="to %")
    deployment_min = forms.IntegerField(required=False, min_value=0, max_value=100_000, label="Deployment from %")
    deployment_max = forms.IntegerField(required=False, min_value=0, max_value=100_000, label="to %")
    kind = forms.ChoiceField(
        choices=[("", "Any recommendation"), *Kind.choices], required=False, label="Recommendation"
    )

    def __init__(self, *args: Any, skus: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["sku"]).choices = [("", "All SKUs"), *skus]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for low, high in (("usage_min", "usage_max"), ("deployment_min", "deployment_max")):
            if cleaned.get(low) is not None and cleaned.get(high) is not None and cleaned[high] <= cleaned[low]:
                self.add_error(high, f"Must be above {cleaned[low]}.")
        return cleaned

    def filters(self) -> PortfolioFilters:
        """The valid filters (call after is_valid())."""
        data = self.cleaned_data
        return PortfolioFilters(
            family=data.get("family") or "",
            sku=data.get("sku") or "",
            usage_min=data.get("usage_min"),
            usage_max=data.get("usage_max"),
            deployment_min=data.get("deployment_min"),
            deployment_max=data.get("deployment_max"),
            kind=data.get("kind") or "",
        )

    def error_text(self) -> str:
        """Every problem in one line, naming the parameter: for a refused export."""
        return "; ".join(f"{field}: {' '.join(map(str, errors))}" for field, errors in self.errors.items())
