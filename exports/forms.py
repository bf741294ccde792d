from typing import Any

from django import forms

from accounts.models import Partner, StaffUser
from exports.models import ReportSchedule
from exports.selectors import report_recipient_choices


class ReportScheduleForm(forms.ModelForm):
    """The schedule of `/settings/reports/`. Recipients are limited to the partner's active
    staff: any other id (another partner's staff, someone deactivated) is an invalid choice."""

    class Meta:
        model = ReportSchedule
        fields = ["cadence", "grain", "recipients"]
        labels = {"grain": "Grain of the attached CSV"}
        widgets = {"recipients": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, partner: Partner, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        recipients = self.fields["recipients"]
        recipients.queryset = report_recipient_choices(partner=partner)
        recipients.label_from_instance = _recipient_label


def _recipient_label(member: StaffUser) -> str:
    return f"{member.full_name} <{member.email}>" if member.full_name else member.email
