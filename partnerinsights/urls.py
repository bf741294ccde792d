from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from accounts import views as account_views
from customers import api as customers_api
from exports import views as export_views
from metrics import api as metrics_api
from metrics import views as metrics_views

api_urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    *customers_api.urlpatterns,
    *metrics_api.urlpatterns,
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="customers:list", permanent=False)),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (error pages, downloads).
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("favicon.svg")), name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url="/accounts/login/"),
        name="password_reset_confirm",
    ),
    path("accounts/tokens/", account_views.api_tokens, name="api_tokens"),
    path("accounts/tokens/<int:token_id>/revoke/", account_views.api_token_revoke, name="api_token_revoke"),
    path("staff/", include("accounts.urls")),
    path("customers/", include("customers.urls")),
    path("imports/", include("customers.import_urls")),
    path("status/", include("metrics.urls")),
    path("settings/", metrics_views.settings_edit, name="settings"),
    path("settings/reports/", export_views.report_schedule, name="report_schedule"),
    path("analytics/", metrics_views.analytics, name="analytics"),
    path("analytics/export.csv", export_views.portfolio_csv, name="analytics_export"),
    path("analytics/inactive.csv", export_views.inactive_csv, name="analytics_inactive_export"),
    path("api/", include((api_urlpatterns, "api"))),
    path("admin/", admin.site.urls),
]

handler404 = "partnerinsights.api.not_found"
