from typing import Any

from django import forms

from customers.models import INSIGHT_FAMILIES
from metrics.filters import PortfolioFilters
from metrics.models import InsightSettings
from metrics.recommendations import Kind


class InsightSettingsForm(forms.ModelForm):
    class Meta:
        model = InsightSettings
        fields = [
            "low_usage_pct",
            "unused_licenses_min",
            "unused_licenses_pct",
            "howto_per_100_users",
            "howto_requests_min",
            "growth_deployment_pct",
            "growth_usage_pct",
            "inactivity_days",
            "currency",
        ]
        labels = {
            "low_usage_pct": "Low adoption: usage below (%)",
            "unused_licenses_min": "Low adoption: unused licenses at least",
            "unused_licenses_pct": "… and at least (% of sold)",
            "howto_per_100_users": "Support load: how-to requests per 100 entitled users at least",
            "howto_requests_min": "… and at least (requests in 28 days)",
            "growth_deployment_pct": "Growth: deployment at least (%)",
            "growth_usage_pct": "… and usage at least (%)",
            "inactivity_days": "Inactive licensed users: no activity for",
            "currency": "Currency of unit prices",
        }

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError("Use a three-letter ISO 4217 code, such as EUR or USD.")
        return currency


class SkuSettingForm(forms.Form):
    """One SKU's row of the settings page."""

    sku = forms.CharField(widget=forms.HiddenInput, max_length=100)
    monthly_price = forms.DecimalField(
        required=False, min_value=0, max_digits=10, decimal_places=2, label="Monthly unit price"
    )
    excluded = forms.BooleanField(required=False, label="Exclude from recommendations and alerts")


SkuSettingFormSet = forms.formset_factory(SkuSettingForm, extra=0)


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
        self.fields["sku"].choices = [("", "All SKUs"), *skus]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
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
        return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in self.errors.items())
