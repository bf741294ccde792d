"""Site-wide routes that belong to no app."""

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import path


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages without a <link rel="icon"> (error pages, downloads)."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [path("favicon.ico", favicon, name="favicon")]
