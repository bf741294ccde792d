from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """Portfolio CSV exports (SPEC §7)."""

    name = "exports"
