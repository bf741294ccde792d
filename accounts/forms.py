from collections.abc import Mapping
from typing import Any, cast

from django import forms

from accounts.models import StaffUser
from accounts.roles import GRANTABLE_ROLES, Role
from accounts.selectors import staff_email_taken


def _role_choices(actor: StaffUser) -> list[tuple[str, str]]:
    grantable = GRANTABLE_ROLES.get(Role(actor.role), frozenset())
    return [(role.value, role.label) for role in Role if role in grantable]


class InviteForm(forms.Form):
    email = forms.EmailField()
    full_name = forms.CharField(max_length=200, required=False)
    role = forms.ChoiceField()

    def __init__(self, data: Mapping[str, Any] | None = None, *, actor: StaffUser, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = _role_choices(actor)

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].lower()
        if staff_email_taken(email=email):
            raise forms.ValidationError("A staff account with this email already exists.")
        return email


class MemberForm(forms.Form):
    role = forms.ChoiceField()
    is_active = forms.BooleanField(required=False, label="Active (may sign in)")

    def __init__(self, data: Mapping[str, Any] | None = None, *, actor: StaffUser, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = _role_choices(actor)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “Power BI refresh”.")
