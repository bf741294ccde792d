from typing import Any, cast

from django import forms

from accounts.models import Partner, StaffUser
from exports.models import ReportSchedule
from exports.selectors import report_recipient_choices


class RecipientField(forms.ModelMultipleChoiceField[StaffUser]):
    def label_from_instance(self, obj: StaffUser) -> str:
        return f"{obj.full_name} <{obj.email}>" if obj.full_name else obj.email


class ReportScheduleForm(forms.ModelForm[ReportSchedule]):
    """The schedule of `/settings/reports/`. Recipients are limited to the partner's active
    staff: any other id (another partner's staff, someone deactivated) is an invalid choice."""

    class Meta:
        model = ReportSchedule
        fields = ["cadence", "grain", "recipients"]
        labels = {"grain": "Grain of the attached CSV"}
        widgets = {"recipients": forms.CheckboxSelectMultiple}
        field_classes = {"recipients": RecipientField}

    def __init__(self, *args: Any, partner: Partner, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(RecipientField, self.fields["recipients"]).queryset = report_recipient_choices(partner=partner)
