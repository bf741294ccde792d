"""The connection's settings page and the sync status page (`collection:`)."""

from django.urls import include, path

from collection import views

collection_urls = (
    [
        path("settings/connection/", views.connection_settings, name="connection"),
        path("settings/connection/test/", views.connection_test, name="connection_test"),
        path("settings/connection/remove/", views.connection_remove, name="connection_remove"),
        path("sync/", views.sync_status, name="status"),
        path("sync/pull/", views.pull_now, name="pull"),
    ],
    "collection",
)

urlpatterns = [path("", include(collection_urls))]
