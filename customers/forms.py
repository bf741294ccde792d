from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from customers.models import INSIGHT_FAMILIES
from customers.selectors import CUSTOMER_SORTS
from metrics.numbers import BAND_LABELS
from metrics.recommendations import Kind


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".zip,.csv,.json"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: object, initial: object = None) -> list[object]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class ImportForm(forms.Form):
    files = MultipleFileField(
        label="Files",
        help_text=(
            "A .zip of the import files, or the CSV files themselves (SPEC §6). Vendor exports too: a .zip with "
            "customers.json and one folder per customer (named by its tenant id) of its subscriptions.json, "
            "subscribedSkus.json and active-user detail reports."
        ),
    )

    def clean_files(self) -> list[object]:
        uploads = self.cleaned_data["files"]
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        total = sum(upload.size for upload in uploads)
        if total > limit:
            raise forms.ValidationError(
                f"The upload is {filesizeformat(total)}; the limit is {filesizeformat(limit)}. "
                "Import larger files with the import_data command or the API."
            )
        return uploads


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
