"""Sign-in, passwords, invitations and personal API tokens (global names) and staff management
(`staff:`)."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import TemplateView

from accounts import views

staff_urls = (
    [
        path("", views.staff_list, name="list"),
        path("invite/", views.staff_invite, name="invite"),
        path("<int:staff_id>/", views.staff_edit, name="edit"),
        path("<int:staff_id>/resend/", views.staff_resend, name="resend"),
        path("<int:staff_id>/unlock/", views.staff_unlock, name="unlock"),
        path("invitations/<int:invitation_id>/resend/", views.invitation_resend, name="invitation_resend"),
        path("invitations/<int:invitation_id>/cancel/", views.invitation_cancel, name="invitation_cancel"),
    ],
    "staff",
)

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/password/reset/", views.password_reset, name="password_reset"),
    path(
        "accounts/password/reset/sent/",
        TemplateView.as_view(template_name="registration/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("accounts/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "accounts/reset/done/",
        TemplateView.as_view(template_name="registration/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path("accounts/invitation/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("accounts/tokens/", views.api_tokens, name="api_tokens"),
    path("accounts/tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("staff/", include(staff_urls)),
]
