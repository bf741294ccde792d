from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The pages partner staff browse: customers, insights, portfolio analytics, settings."""

    name = "dashboard"
