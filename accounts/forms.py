from collections.abc import Mapping
from typing import Any, cast

from django import forms
from django.contrib.auth.forms import SetPasswordForm

from accounts.models import Invitation, Partner, StaffUser, normalise_email
from accounts.roles import GRANTABLE_ROLES, Role
from accounts.selectors import invitation_pending, staff_member_by_email


def _role_choices(actor: StaffUser) -> list[tuple[str, str]]:
    grantable = GRANTABLE_ROLES.get(Role(actor.role), frozenset())
    return [(role.value, role.label) for role in Role if role in grantable]


class InviteForm(forms.Form):
    email = forms.EmailField()
    full_name = forms.CharField(max_length=200, required=False)
    role = forms.ChoiceField()

    def __init__(
        self, data: Mapping[str, Any] | None = None, *, actor: StaffUser, partner: Partner, **kwargs: Any
    ) -> None:
        super().__init__(data, **kwargs)
        self.partner = partner
        cast(forms.ChoiceField, self.fields["role"]).choices = _role_choices(actor)

    def clean_email(self) -> str:
        """Only this partner's own staff and invitations are named: whether an address has an
        account elsewhere is never told (the invitation then goes pending like any other)."""
        email = normalise_email(self.cleaned_data["email"])
        if staff_member_by_email(partner=self.partner, email=email) is not None:
            raise forms.ValidationError("This address is already on your staff.")
        if invitation_pending(partner=self.partner, email=email):
            raise forms.ValidationError("An invitation to this address is pending: resend it from the staff page.")
        return email


class MemberForm(forms.Form):
    role = forms.ChoiceField()
    is_active = forms.BooleanField(
        required=False,
        label="Active (may sign in)",
        help_text="Deactivating ends their sessions and revokes their API tokens for good.",
    )

    def __init__(self, data: Mapping[str, Any] | None = None, *, actor: StaffUser, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = _role_choices(actor)


class AcceptInvitationForm(SetPasswordForm):  # type: ignore[type-arg]  # the account does not exist yet
    """The name and the password of the account an invitation creates."""

    full_name = forms.CharField(max_length=200, required=False, label="Your name")
    field_order = ["full_name", "new_password1", "new_password2"]

    def __init__(self, invitation: Invitation, data: Mapping[str, Any] | None = None) -> None:
        # An unsaved user, so the password validators compare with the address and the name.
        user = StaffUser(email=invitation.email, full_name=invitation.full_name)
        super().__init__(user, data, initial={"full_name": invitation.full_name})

    def clean(self) -> dict[str, Any]:
        self.user.full_name = self.cleaned_data.get("full_name", "")
        return cast(dict[str, Any], super().clean())


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(label="Your email address", max_length=254)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “Power BI refresh”.")
