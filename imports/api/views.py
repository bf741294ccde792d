"""REST API of import runs, and the .zip import itself."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.http import PartnerAPIRequest
from accounts.models import Partner
from accounts.roles import Action
from core.api import PartnerViewSet
from imports import selectors
from imports.api.serializers import (
    ImportRefusedSerializer,
    ImportRunDetailSerializer,
    ImportRunSerializer,
    ImportUploadSerializer,
    RunStatusQuerySerializer,
)
from imports.models import ImportRun
from imports.pipeline.issues import ImportIssue
from imports.pipeline.sources import declared_upload_size, source_from_zip_upload
from imports.services import data_import


class ImportRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PartnerViewSet[Partner]):
    """Import runs (who, when, what changed, the problems) and the .zip import itself."""

    model = ImportRun
    required_action = Action.IMPORT_DATA
    parser_classes = [MultiPartParser]
    query_serializer_class = RunStatusQuerySerializer
    ordering_fields = ["started_at", "status"]
    ordering = ["-started_at"]

    def get_serializer_class(self) -> type[serializers.Serializer[ImportRun]]:
        return ImportRunSerializer if self.action == "list" else ImportRunDetailSerializer

    def partner_queryset(self, partner: Partner) -> QuerySet[ImportRun]:
        runs = selectors.import_run_list(partner=partner)
        return runs.filter(status=self.params["status"]) if "status" in self.params else runs

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            201: OpenApiResponse(ImportRunDetailSerializer, description="Imported: the run, its counts and warnings."),
            413: OpenApiResponse(ImportRefusedSerializer, description="Larger than the upload limit; not read."),
            422: OpenApiResponse(
                ImportRunDetailSerializer, description="Refused: the run with every problem; nothing was written."
            ),
        },
    )
    def create(self, request: PartnerAPIRequest) -> Response:
        """Imports one .zip of the canonical files, all or nothing, as the import page does."""
        refused = _too_large("upload", declared_upload_size(request.META))
        if refused is None:
            upload = ImportUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            file = upload.validated_data["file"]
            refused = _too_large(file.name, file.size)
        if refused is not None:
            return Response(refused, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        source = source_from_zip_upload(file)
        run = data_import(partner=self.partner, source=source, origin=ImportRun.Origin.API, started_by=request.user)
        succeeded = run.status == ImportRun.Status.SUCCEEDED
        code = status.HTTP_201_CREATED if succeeded else status.HTTP_422_UNPROCESSABLE_ENTITY
        return Response(ImportRunDetailSerializer(run).data, status=code)


def _too_large(name: str, size: int) -> dict[str, Any] | None:
    """The 413 body for an upload over IMPORT_MAX_UPLOAD_BYTES (Django does not cap uploads)."""
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if size <= limit:
        return None
    issue = ImportIssue(name, 0, "-", f"larger than the upload limit of {limit} bytes; nothing was read", str(size))
    return {"detail": "The upload is larger than the limit; nothing was imported.", "errors": [issue.as_dict()]}
