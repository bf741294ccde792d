"""Serializers of the import API: runs (with their live progress), their problems, the .zip upload."""

from __future__ import annotations

import zipfile
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from imports import services
from imports.models import ImportPhase, ImportRun
from imports.progress import Live, live


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


class ProgressSerializer(serializers.Serializer[Any]):
    rows_read = serializers.IntegerField(help_text="Rows read so far, over every file.")
    files_done = serializers.IntegerField(help_text="Files read to their end.")
    files_total = serializers.IntegerField(help_text="Files the import reads (known once they are sorted).")
    heartbeat_at = serializers.DateTimeField(
        allow_null=True, help_text="The worker's last sign of life (every few seconds while it runs)."
    )


class UploadSerializer(serializers.Serializer[Any]):
    files = serializers.ListField(child=serializers.CharField(), help_text="The uploaded file names.")
    bytes = serializers.IntegerField(help_text="Their size in all.")
    removed_at = serializers.DateTimeField(
        allow_null=True, help_text="When the stored upload was removed (after the retention period)."
    )
    restartable = serializers.BooleanField(
        help_text="Whether `POST .../restart/` may start the run again from the stored upload."
    )


class ImportRunSerializer(serializers.ModelSerializer[ImportRun]):
    url = serializers.SerializerMethodField(help_text="This run in the API; poll it until `status` is final.")
    started_by = serializers.EmailField(source="started_by.email", read_only=True, allow_null=True, default=None)
    phase = serializers.SerializerMethodField(help_text="What the run does now, or where a failed run stopped.")
    phase_label = serializers.SerializerMethodField(help_text="The phase in words.")
    progress = serializers.SerializerMethodField()
    upload = serializers.SerializerMethodField(help_text="The stored upload (web and API imports); null otherwise.")
    counts = serializers.DictField(child=FileCountsSerializer(), read_only=True, help_text="Rows per file read.")
    totals = TotalsSerializer(read_only=True, help_text="Created, updated and unchanged rows of all files.")

    class Meta:
        model = ImportRun
        fields = [
            "id",
            "url",
            "status",
            "phase",
            "phase_label",
            "progress",
            "origin",
            "source_name",
            "sha256",
            "started_by",
            "started_at",
            "finished_at",
            "attempts",
            "failure_reason",
            "upload",
            "counts",
            "totals",
            "error_count",
        ]
        extra_kwargs = {
            "status": {"help_text": "queued (waiting for a worker), running, succeeded or failed."},
            "failure_reason": {
                "help_text": "Why it failed when its errors cannot say: not queued, its worker stopped, too long."
            },
        }

    def get_url(self, run: ImportRun) -> str:
        path = reverse("api:import-detail", kwargs={"pk": run.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def _live(self, run: ImportRun) -> Live:
        """The run's live state, read once per run from the cache (while it runs)."""
        known: dict[int, Live] = self.context.setdefault("live", {})
        if run.pk not in known:
            known[run.pk] = live(run)
        return known[run.pk]

    @extend_schema_field(serializers.ChoiceField(choices=ImportPhase.choices))
    def get_phase(self, run: ImportRun) -> str:
        return self._live(run).phase

    def get_phase_label(self, run: ImportRun) -> str:
        return self._live(run).label

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, run: ImportRun) -> dict[str, Any]:
        return dict(ProgressSerializer(self._live(run)).data)

    @extend_schema_field(UploadSerializer(allow_null=True))
    def get_upload(self, run: ImportRun) -> dict[str, Any] | None:
        if not run.upload_files:
            return None
        upload = {
            "files": [stored["name"] for stored in run.upload_files],
            "bytes": run.upload_bytes,
            "removed_at": run.upload_removed_at,
            "restartable": services.import_restartable(run),
        }
        return dict(UploadSerializer(upload).data)


class ImportRunDetailSerializer(ImportRunSerializer):
    # A field named like Serializer.errors: DRF's metaclass takes declared fields off the class,
    # so `.errors` stays the validation errors; the stubs cannot tell.
    errors = ImportIssueSerializer(  # type: ignore[assignment]
        many=True, read_only=True, help_text="The first 200 problems, in file order."
    )
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(ImportRunSerializer.Meta):
        fields = [*ImportRunSerializer.Meta.fields, "errors", "warnings", "affected_from", "affected_to"]


class ImportNotRestartableSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()


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
