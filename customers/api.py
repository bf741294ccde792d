"""REST API of customers, their own subscriptions and imports (read-only, plus the .zip import)."""

from __future__ import annotations

import zipfile
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Partner
from accounts.roles import Action
from customers import selectors
from customers.importing.issues import ImportIssue
from customers.importing.service import data_import
from customers.importing.sources import declared_upload_size, source_from_zip_upload
from customers.models import Customer, ImportRun, Subscription
from partnerinsights.api import PartnerViewSet

# --- serializers -------------------------------------------------------------------------------


class CustomerSerializer(serializers.ModelSerializer):
    user_count = serializers.IntegerField(read_only=True, help_text="End users of the customer.")
    own_subscription_count = serializers.IntegerField(read_only=True, help_text="Subscriptions sold by this partner.")

    class Meta:
        model = Customer
        fields = ["id", "external_id", "name", "domain", "user_count", "own_subscription_count"]


class SubscriptionSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku", read_only=True)
    sku_name = serializers.CharField(source="product.name", read_only=True)
    product_family = serializers.CharField(source="product.family", read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "external_id",
            "sku",
            "sku_name",
            "product_family",
            "quantity",
            "status",
            "is_trial",
            "start_date",
            "end_date",
        ]


class ImportIssueSerializer(serializers.Serializer):
    """One problem of a refused import: `FILE:LINE:COLUMN: reason (value 'VALUE')` as fields."""

    file = serializers.CharField()
    line = serializers.IntegerField(help_text="1 is the header row; 0 means the file as a whole.")
    column = serializers.CharField()
    reason = serializers.CharField()
    value = serializers.CharField(allow_blank=True)


class TotalsSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class FileCountsSerializer(TotalsSerializer):
    rows = serializers.IntegerField()


class ImportRunSerializer(serializers.ModelSerializer):
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
    errors = ImportIssueSerializer(many=True, read_only=True, help_text="The first 200 problems, in file order.")
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(ImportRunSerializer.Meta):
        fields = [*ImportRunSerializer.Meta.fields, "errors", "warnings", "affected_from", "affected_to"]


class ImportRefusedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = ImportIssueSerializer(many=True)


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="One .zip of the canonical files of SPEC §6 (any may be absent).")

    def validate_file(self, upload: Any) -> Any:
        if not zipfile.is_zipfile(upload):  # by its content, whatever its name
            raise serializers.ValidationError("Upload one .zip archive of the import files.")
        return upload


class CustomerQuerySerializer(serializers.Serializer):
    search = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Part of the name or the domain."
    )


class RunStatusQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ImportRun.Status.choices, required=False)


# --- views -------------------------------------------------------------------------------------


class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PartnerViewSet):
    """The partner's customers, with or without data."""

    model = Customer
    serializer_class = CustomerSerializer
    query_serializer_class = CustomerQuerySerializer
    ordering_fields = ["name", "external_id", "domain", "user_count", "own_subscription_count"]
    ordering = ["name", "external_id"]

    def partner_queryset(self, partner: Partner) -> QuerySet[Customer]:
        return selectors.customer_list(partner=partner, search=self.params.get("search", ""))


class CustomerRowsViewSet(PartnerViewSet):
    """Rows of one customer named by `customer_id` in the URL, looked up inside the partner: another
    partner's customer is a 404, never an empty list."""

    @cached_property
    def customer(self) -> Customer:
        return selectors.customer_get(partner=self.partner, customer_id=self.kwargs["customer_id"])


def row_owner(view: PartnerViewSet) -> dict[str, Customer]:
    """The `customer=` a selector takes for a view of one customer's rows; none for the portfolio."""
    return {"customer": view.customer} if isinstance(view, CustomerRowsViewSet) else {}


class OwnSubscriptionViewSet(mixins.ListModelMixin, CustomerRowsViewSet):
    """The customer's subscriptions sold by this partner (source `own`); other sources never appear."""

    model = Subscription
    serializer_class = SubscriptionSerializer
    ordering_fields = ["external_id", "quantity", "status", "start_date", "end_date"]
    ordering = ["product__name", "external_id"]

    def partner_queryset(self, partner: Partner) -> QuerySet[Subscription]:
        return selectors.own_subscription_list(partner=partner, customer=self.customer)


class ImportRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PartnerViewSet):
    """Import runs (who, when, what changed, the problems) and the .zip import itself."""

    model = ImportRun
    required_action = Action.IMPORT_DATA
    parser_classes = [MultiPartParser]
    query_serializer_class = RunStatusQuerySerializer
    ordering_fields = ["started_at", "status"]
    ordering = ["-started_at"]

    def get_serializer_class(self) -> type[serializers.Serializer]:
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
    def create(self, request: Request) -> Response:
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


urlpatterns = [
    path("customers/", CustomerViewSet.as_view({"get": "list"}), name="customer-list"),
    path("customers/<int:pk>/", CustomerViewSet.as_view({"get": "retrieve"}), name="customer-detail"),
    path(
        "customers/<int:customer_id>/subscriptions/",
        OwnSubscriptionViewSet.as_view({"get": "list"}),
        name="customer-subscription-list",
    ),
    path("imports/", ImportRunViewSet.as_view({"get": "list", "post": "create"}), name="import-list"),
    path("imports/<int:pk>/", ImportRunViewSet.as_view({"get": "retrieve"}), name="import-detail"),
]
