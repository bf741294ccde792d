"""The API's own routes: its OpenAPI schema."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from core.api import PartnerRateThrottle


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema; generating it costs more than any read, so it has a rate of its own."""

    throttle_classes = [PartnerRateThrottle]
    throttle_scope = "schema"


urlpatterns = [path("schema/", SchemaView.as_view(), name="schema")]
