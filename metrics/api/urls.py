from django.urls import path

from metrics.api.views import (
    CustomerInactiveUserViewSet,
    FamilyMetricsViewSet,
    InactiveUserViewSet,
    PortfolioViewSet,
    RecomputeRunViewSet,
    SkuMetricsViewSet,
    WorkloadMetricsViewSet,
)

_CUSTOMER = "customers/<int:customer_id>/metrics"
urlpatterns = [
    path(f"{_CUSTOMER}/sku/", SkuMetricsViewSet.as_view({"get": "list"}), name="customer-metrics-sku"),
    path(f"{_CUSTOMER}/workload/", WorkloadMetricsViewSet.as_view({"get": "list"}), name="customer-metrics-workload"),
    path(f"{_CUSTOMER}/family/", FamilyMetricsViewSet.as_view({"get": "list"}), name="customer-metrics-family"),
    path("portfolio/", PortfolioViewSet.as_view({"get": "list"}), name="portfolio"),
    path("inactive-users/", InactiveUserViewSet.as_view({"get": "list"}), name="inactive-user-list"),
    path(
        "customers/<int:customer_id>/inactive-users/",
        CustomerInactiveUserViewSet.as_view({"get": "list"}),
        name="customer-inactive-user-list",
    ),
    path("recompute-runs/", RecomputeRunViewSet.as_view({"get": "list"}), name="recompute-run-list"),
    path("recompute-runs/<int:pk>/", RecomputeRunViewSet.as_view({"get": "retrieve"}), name="recompute-run-detail"),
]
