from django import forms

from metrics.models import InsightSettings


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
