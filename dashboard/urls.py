"""The dashboard's pages. `customer_urls` join the export app's customer downloads under the
`customers:` namespace in the root URLconf."""

from django.urls import path
from django.views.generic import RedirectView

from dashboard import views

customer_urls = [
    path("", views.customer_list, name="list"),
    path("<int:customer_id>/insights/", views.customer_insights, name="insights"),
    path("<int:customer_id>/subscriptions/", views.own_subscriptions, name="subscriptions"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="customers:list", permanent=False)),
    path("analytics/", views.analytics, name="analytics"),
    path("settings/", views.settings_edit, name="settings"),
]
