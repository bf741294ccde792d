from django.urls import path

from customers import import_views

app_name = "imports"
urlpatterns = [
    path("", import_views.import_page, name="index"),
    path("<int:run_id>/", import_views.import_detail, name="detail"),
]
