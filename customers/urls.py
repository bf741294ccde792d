from django.urls import path

from customers import views
from exports import views as export_views

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="list"),
    path("<int:customer_id>/insights/", views.customer_insights, name="insights"),
    path("<int:customer_id>/subscriptions/", views.own_subscriptions, name="subscriptions"),
    path("<int:customer_id>/export.csv", export_views.customer_csv, name="export"),
    path("<int:customer_id>/inactive.csv", export_views.inactive_csv, name="inactive_export"),
]
