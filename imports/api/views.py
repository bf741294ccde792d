"""REST API of import runs, and the .zip import itself: stored and queued (202), run by a worker."""

from __future__ import annotations

from typing import Any, cast

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
from imports import selectors, services
from imports.api.serializers import (
    ImportNotRestartableSerializer,
    ImportRefusedSerializer,
    ImportRunDetailSerializer,
    ImportRunSerializer,
    ImportUploadSerializer,
    RunStatusQuerySerializer,
)
from imports.models import ImportRun
from imports.pipeline.issues import ImportIssue
from imports.pipeline.sources import declared_upload_size
from imports.tasks import import_enqueue

ACCEPTED = (
    "Stored and queued: a worker imports it. The body is the run; `Location` and `url` are its address, "
    "to poll until `status` is `succeeded` or `failed` (with its `errors`, nothing written)."
)


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
            202: OpenApiResponse(ImportRunDetailSerializer, description=ACCEPTED),
            400: OpenApiResponse(description="No `file`, or not a .zip archive; nothing was stored."),
            413: OpenApiResponse(ImportRefusedSerializer, description="Larger than the upload limit; not read."),
            429: OpenApiResponse(description="Too many requests; try again later (`Retry-After`)."),
        },
    )
    def create(self, request: PartnerAPIRequest) -> Response:
        """Imports one .zip of the canonical files (or vendor exports), all or nothing, as the import page
        does: the upload is stored and queued at once; a worker reads, checks and writes it."""
        refused = _too_large("upload", declared_upload_size(request.META))
        if refused is None:
            upload = ImportUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            file = upload.validated_data["file"]
            refused = _too_large(file.name, file.size)
        if refused is not None:
            return Response(refused, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        run = services.import_upload(
            partner=self.partner, files=[file], origin=ImportRun.Origin.API, started_by=request.user
        )
        import_enqueue(run)
        return self._accepted(run)

    @extend_schema(
        request=None,
        responses={
            202: OpenApiResponse(ImportRunDetailSerializer, description=ACCEPTED),
            409: OpenApiResponse(
                ImportNotRestartableSerializer,
                description="It runs, it succeeded, or its upload is gone (`upload.restartable` is false).",
            ),
            429: OpenApiResponse(description="Too many requests; try again later (`Retry-After`)."),
        },
    )
    def restart(self, request: PartnerAPIRequest, pk: int) -> Response:
        """Starts a failed or stuck run again from its stored upload (a new attempt of the same run)."""
        run = cast(ImportRun, self.get_object())
        try:
            run = services.import_restart(run=run)
        except ValueError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        import_enqueue(run)
        return self._accepted(run)

    def _accepted(self, run: ImportRun) -> Response:
        run.refresh_from_db()  # with tasks run eagerly (no worker), it has run already
        body = ImportRunDetailSerializer(run, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


def _too_large(name: str, size: int) -> dict[str, Any] | None:
    """The 413 body for an upload over IMPORT_MAX_UPLOAD_BYTES (Django does not cap uploads)."""
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if size <= limit:
        return None
    issue = ImportIssue(name, 0, "-", f"larger than the upload limit of {limit} bytes; nothing was read", str(size))
    return {"detail": "The upload is larger than the limit; nothing was imported.", "errors": [issue.as_dict()]}
