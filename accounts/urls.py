"""Sign-in, passwords and personal API tokens (global names) and staff management (`staff:`)."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views

staff_urls = (
    [
        path("", views.staff_list, name="list"),
        path("invite/", views.staff_invite, name="invite"),
        path("<int:staff_id>/", views.staff_edit, name="edit"),
    ],
    "staff",
)

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url="/accounts/login/"),
        name="password_reset_confirm",
    ),
    path("accounts/tokens/", views.api_tokens, name="api_tokens"),
    path("accounts/tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("staff/", include(staff_urls)),
]
