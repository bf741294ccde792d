from django.urls import path

from collection.api.views import CustomerSyncViewSet, PullRunViewSet

urlpatterns = [
    path("sync/customers/", CustomerSyncViewSet.as_view({"get": "list"}), name="sync-customer-list"),
    path("sync/pulls/", PullRunViewSet.as_view({"get": "list"}), name="sync-pull-list"),
    path("sync/pulls/<int:pk>/", PullRunViewSet.as_view({"get": "retrieve"}), name="sync-pull-detail"),
]
