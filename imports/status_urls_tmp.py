from django.urls import path

from metrics import views

app_name = "metrics"
urlpatterns = [
    path("", views.data_status, name="status"),
    path("recompute/", views.recompute_now, name="recompute"),
]
