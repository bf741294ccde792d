from django.apps import AppConfig
from django_structlog import signals

from core.observability import bind_request_partner


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Shared base"

    def ready(self) -> None:
        # The partner is known once the user is: at the request's start (session) and at its
        # end (an API token authenticates inside the view).
        signals.bind_extra_request_metadata.connect(bind_request_partner, dispatch_uid="core.partner_id")
        signals.bind_extra_request_finished_metadata.connect(bind_request_partner, dispatch_uid="core.partner_id_end")
