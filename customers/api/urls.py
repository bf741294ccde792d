from django.urls import path

from customers.api.views import CustomerViewSet, OwnSubscriptionViewSet

urlpatterns = [
    path("customers/", CustomerViewSet.as_view({"get": "list"}), name="customer-list"),
    path("customers/<int:pk>/", CustomerViewSet.as_view({"get": "retrieve"}), name="customer-detail"),
    path(
        "customers/<int:customer_id>/subscriptions/",
        OwnSubscriptionViewSet.as_view({"get": "list"}),
        name="customer-subscription-list",
    ),
]
