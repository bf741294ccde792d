"""REST API of the partner's customers and their own subscriptions (read-only)."""

from __future__ import annotations

from functools import cached_property

from django.db.models import QuerySet
from rest_framework import mixins

from accounts.models import Partner
from accounts.roles import Action
from core.api import PartnerViewSet
from customers import selectors
from customers.api.serializers import CustomerQuerySerializer, CustomerSerializer, SubscriptionSerializer
from customers.models import Customer, Subscription


class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PartnerViewSet[Partner]):
    """The partner's customers, with or without data."""

    required_action = Action.VIEW_INSIGHTS
    model = Customer
    serializer_class = CustomerSerializer
    query_serializer_class = CustomerQuerySerializer
    ordering_fields = ["name", "external_id", "domain", "user_count", "own_subscription_count"]
    ordering = ["name", "external_id"]

    def partner_queryset(self, partner: Partner) -> QuerySet[Customer]:
        return selectors.customer_list(partner=partner, search=self.params.get("search", ""))


class CustomerRowsViewSet(PartnerViewSet[Partner]):
    """Rows of one customer named by `customer_id` in the URL, looked up inside the partner: another
    partner's customer is a 404, never an empty list."""

    required_action = Action.VIEW_INSIGHTS

    @cached_property
    def customer(self) -> Customer:
        return selectors.customer_get(partner=self.partner, customer_id=self.kwargs["customer_id"])


def customer_of(view: PartnerViewSet[Partner]) -> Customer | None:
    """The customer of a view of one customer's rows; None for the portfolio."""
    return view.customer if isinstance(view, CustomerRowsViewSet) else None


def row_owner(view: PartnerViewSet[Partner]) -> dict[str, Customer]:
    """The `customer=` a selector takes for a view of one customer's rows; none for the portfolio."""
    customer = customer_of(view)
    return {} if customer is None else {"customer": customer}


class OwnSubscriptionViewSet(mixins.ListModelMixin, CustomerRowsViewSet):
    """The customer's subscriptions sold by this partner (source `own`); other sources never appear."""

    model = Subscription
    serializer_class = SubscriptionSerializer
    ordering_fields = ["external_id", "quantity", "status", "start_date", "end_date"]
    ordering = ["product__name", "external_id"]

    def partner_queryset(self, partner: Partner) -> QuerySet[Subscription]:
        return selectors.own_subscription_list(partner=partner, customer=self.customer)
