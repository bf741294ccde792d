"""The upload form of the Import page."""

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".zip,.csv,.json"}))
        super().__init__(**kwargs)

    def clean(self, data: Any, initial: Any | None = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class ImportForm(forms.Form):
    # A field named like BaseForm.files: the form's metaclass takes declared fields off the class,
    # so `self.files` stays the uploads; the stubs cannot tell.
    files = MultipleFileField(  # type: ignore[assignment]
        label="Files",
        help_text=(
            "A .zip of the import files, or the CSV files themselves (SPEC §6). Vendor exports too: a .zip with "
            "customers.json and one folder per customer (named by its tenant id) of its subscriptions.json, "
            "subscribedSkus.json and active-user detail reports."
        ),
    )

    def clean_files(self) -> list[UploadedFile]:
        uploads: list[UploadedFile] = self.cleaned_data["files"]
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        total = sum(upload.size or 0 for upload in uploads)  # uploads always have a size
        if total > limit:
            raise forms.ValidationError(
                f"The upload is {filesizeformat(total)}; the limit is {filesizeformat(limit)}. "
                "Import larger files with the import_data command or the API."
            )
        return uploads
