from django.urls import path

from customers import views

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="list"),
    path("<int:customer_id>/insights/", views.customer_insights, name="insights"),
    path("<int:customer_id>/subscriptions/", views.own_subscriptions, name="subscriptions"),
]
