"""CSV downloads and the scheduled reports' page. `customer_urls` join the dashboard's customer
pages under the `customers:` namespace in the root URLconf."""

from django.urls import path

from exports import views

customer_urls = [
    path("<int:customer_id>/export.csv", views.customer_csv, name="export"),
    path("<int:customer_id>/inactive.csv", views.inactive_csv, name="inactive_export"),
]

urlpatterns = [
    path("analytics/export.csv", views.portfolio_csv, name="analytics_export"),
    path("analytics/inactive.csv", views.inactive_csv, name="analytics_inactive_export"),
    path("settings/reports/", views.report_schedule, name="report_schedule"),
]
