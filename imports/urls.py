"""The import pages (`imports:`) and the Data status page. The status page's names keep the
`metrics:` namespace they had when metrics served it: URL names are part of the contract."""

from django.urls import include, path

from imports import views

import_urls = (
    [
        path("", views.import_page, name="index"),
        path("<int:run_id>/", views.import_detail, name="detail"),
        path("<int:run_id>/restart/", views.import_restart, name="restart"),
    ],
    "imports",
)
status_urls = (
    [
        path("", views.data_status, name="status"),
        path("recompute/", views.recompute_now, name="recompute"),
    ],
    "metrics",
)

urlpatterns = [
    path("imports/", include(import_urls)),
    path("status/", include(status_urls)),
]
