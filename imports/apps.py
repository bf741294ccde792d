from django.apps import AppConfig


class ImportsConfig(AppConfig):
    """Data in: the import pipeline (SPEC §6, vendor exports), its runs, pages, API and commands,
    and the Data status page."""

    name = "imports"
