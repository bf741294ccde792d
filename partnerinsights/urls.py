"""The root URLconf: it only includes each app's routes (pages in `<app>/urls.py`, API routes in
`<app>/api/urls.py`)."""

from django.contrib import admin
from django.urls import include, path

from dashboard.urls import customer_urls as customer_pages
from exports.urls import customer_urls as customer_downloads

api_urls = [
    path("", include("core.api_urls")),
    path("", include("customers.api.urls")),
    path("", include("metrics.api.urls")),
    path("", include("imports.api.urls")),
    path("", include("collection.api.urls")),
]

urlpatterns = [
    path("", include("core.urls")),
    path("", include("accounts.urls")),
    path("", include("dashboard.urls")),
    path("customers/", include((customer_pages + customer_downloads, "customers"))),
    path("", include("imports.urls")),
    path("", include("exports.urls")),
    path("", include("collection.urls")),
    path("api/", include((api_urls, "api"))),
    path("admin/", admin.site.urls),
]

handler404 = "core.api.not_found"
