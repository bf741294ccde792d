from django.urls import path

from accounts import views

app_name = "staff"
urlpatterns = [
    path("", views.staff_list, name="list"),
    path("invite/", views.staff_invite, name="invite"),
    path("<int:staff_id>/", views.staff_edit, name="edit"),
]
