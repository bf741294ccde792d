"""The connection form: the partner's app registration. The secret is write-only."""

from __future__ import annotations

import re
from typing import Any

from django import forms

# A GUID shown whole (36 characters), never corrected by the browser.
GUID_INPUT = forms.TextInput(attrs={"class": "guid", "spellcheck": "false", "autocomplete": "off"})
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ConnectionForm(forms.Form):
    tenant_id = forms.CharField(
        label="Your directory tenant id",
        max_length=100,
        widget=GUID_INPUT,
        help_text="The GUID of your own (the partner's) tenant.",
    )
    client_id = forms.CharField(
        label="Application (client) id",
        max_length=100,
        widget=GUID_INPUT,
        help_text="Of the app registered in your directory.",
    )
    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        max_length=1000,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "class": "guid"}),
        help_text="Never shown again once saved. Leave empty to keep the stored secret.",
    )

    def __init__(self, *args: Any, has_secret: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_secret = has_secret

    def clean_tenant_id(self) -> str:
        return _guid(self.cleaned_data["tenant_id"], "tenant id")

    def clean_client_id(self) -> str:
        return _guid(self.cleaned_data["client_id"], "client id")

    def clean_client_secret(self) -> str:
        secret: str = self.cleaned_data["client_secret"]
        if not secret and not self.has_secret:
            raise forms.ValidationError("Enter the client secret: there is none stored yet.")
        return secret


def _guid(value: str, what: str) -> str:
    value = value.strip()
    if not GUID.match(value):
        raise forms.ValidationError(f"A {what} is a GUID, like 1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b.")
    return value.lower()
