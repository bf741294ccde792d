"""REST API of the collection's status (read-only, for the roles that may import)."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import mixins

from accounts.models import Partner
from accounts.roles import Action
from collection import selectors
from collection.api.serializers import CustomerSyncSerializer, PullRunSerializer, SyncQuerySerializer
from collection.models import CustomerSync, PullRun
from core.api import PartnerViewSet


class CustomerSyncViewSet(mixins.ListModelMixin, PartnerViewSet[Partner]):
    """Where each customer's collection stands: the last success, the last error in plain words,
    what was imported and the last day of activity pulled."""

    required_action = Action.IMPORT_DATA
    model = CustomerSync
    serializer_class = CustomerSyncSerializer
    query_serializer_class = SyncQuerySerializer
    ordering_fields = ["name", "tenant_id", "last_success_at", "failures"]
    ordering = ["-failures", "name", "tenant_id"]

    def partner_queryset(self, partner: Partner) -> QuerySet[CustomerSync]:
        rows = selectors.customer_sync_list(partner=partner).select_related("customer")
        return rows.exclude(error="") if self.params.get("failing") else rows


class PullRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PartnerViewSet[Partner]):
    """The pulls from the vendor's APIs, newest first."""

    required_action = Action.IMPORT_DATA
    model = PullRun
    serializer_class = PullRunSerializer
    ordering_fields = ["started_at", "status"]
    ordering = ["-started_at"]

    def partner_queryset(self, partner: Partner) -> QuerySet[PullRun]:
        return selectors.pull_run_list(partner=partner)
