"""Serializers of the import API: runs, their problems, the .zip upload."""

from __future__ import annotations

import zipfile
from typing import Any

from rest_framework import serializers

from imports.models import ImportRun


class ImportIssueSerializer(serializers.Serializer[Any]):
    """One problem of a refused import: `FILE:LINE:COLUMN: reason (value 'VALUE')` as fields."""

    file = serializers.CharField()
    line = serializers.IntegerField(help_text="1 is the header row; 0 means the file as a whole.")
    column = serializers.CharField()
    reason = serializers.CharField()
    value = serializers.CharField(allow_blank=True)


class TotalsSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class FileCountsSerializer(TotalsSerializer):
    rows = serializers.IntegerField()


class ImportRunSerializer(serializers.ModelSerializer[ImportRun]):
    started_by = serializers.EmailField(source="started_by.email", read_only=True, allow_null=True, default=None)
    counts = serializers.DictField(child=FileCountsSerializer(), read_only=True, help_text="Rows per file read.")
    totals = TotalsSerializer(read_only=True, help_text="Created, updated and unchanged rows of all files.")

    class Meta:
        model = ImportRun
        fields = [
            "id",
            "status",
            "origin",
            "source_name",
            "sha256",
            "started_by",
            "started_at",
            "finished_at",
            "counts",
            "totals",
            "error_count",
        ]


class ImportRunDetailSerializer(ImportRunSerializer):
    # A field named like Serializer.errors: DRF's metaclass takes declared fields off the class,
    # so `.errors` stays the validation errors; the stubs cannot tell.
    errors = ImportIssueSerializer(  # type: ignore[assignment]
        many=True, read_only=True, help_text="The first 200 problems, in file order."
    )
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(ImportRunSerializer.Meta):
        fields = [*ImportRunSerializer.Meta.fields, "errors", "warnings", "affected_from", "affected_to"]


class ImportRefusedSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    errors = ImportIssueSerializer(many=True)  # type: ignore[assignment]  # a field, as above


class ImportUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="One .zip of the canonical files of SPEC §6 (any may be absent).")

    def validate_file(self, upload: Any) -> Any:
        if not zipfile.is_zipfile(upload):  # by its content, whatever its name
            raise serializers.ValidationError("Upload one .zip archive of the import files.")
        return upload


class RunStatusQuerySerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=ImportRun.Status.choices, required=False)
