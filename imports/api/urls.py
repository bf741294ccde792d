from django.urls import path

from imports.api.views import ImportRunViewSet

urlpatterns = [
    path("imports/", ImportRunViewSet.as_view({"get": "list", "post": "create"}), name="import-list"),
    path("imports/<int:pk>/", ImportRunViewSet.as_view({"get": "retrieve"}), name="import-detail"),
    path("imports/<int:pk>/restart/", ImportRunViewSet.as_view({"post": "restart"}), name="import-restart"),
]
