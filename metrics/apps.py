from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Metric snapshots per date and their nightly recomputation (SPEC §2)."""

    name = "metrics"
