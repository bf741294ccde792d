"""Forms of the dashboard's pages: the customer list's filters and the partner's settings."""

from django import forms

from customers.models import INSIGHT_FAMILIES
from customers.selectors import CUSTOMER_SORTS
from metrics.models import InsightSettings
from metrics.numbers import BAND_LABELS
from metrics.recommendations import Kind


class CustomerFilterForm(forms.Form):
    """The customer list's filters (GET). Invalid values fall back to the defaults."""

    q = forms.CharField(required=False, label="Search", max_length=200)
    family = forms.ChoiceField(choices=[(f.value, f.label) for f in INSIGHT_FAMILIES], required=False)
    usage = forms.ChoiceField(choices=[("", "Any usage"), *BAND_LABELS.items()], required=False, label="Usage")
    kind = forms.ChoiceField(choices=[("", "Any recommendation"), *Kind.choices], required=False)
    sort = forms.ChoiceField(
        choices=[(f"{sign}{key}", key) for key in CUSTOMER_SORTS for sign in ("", "-")], required=False
    )

    def values(self) -> dict[str, str]:
        """The cleaned filters, with the defaults for anything missing or invalid."""
        cleaned = self.cleaned_data if self.is_valid() else {}
        return {
            "q": (cleaned.get("q") or "").strip(),
            "family": cleaned.get("family") or INSIGHT_FAMILIES[0].value,
            "usage": cleaned.get("usage") or "",
            "kind": cleaned.get("kind") or "",
            "sort": cleaned.get("sort") or "name",
        }


class InsightSettingsForm(forms.ModelForm[InsightSettings]):
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
        currency: str = self.cleaned_data["currency"].strip().upper()
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
