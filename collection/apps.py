from django.apps import AppConfig


class CollectionConfig(AppConfig):
    """Data that arrives by itself: each partner's connection to the vendor's partner portal and
    directory APIs, the nightly pull that hands their answers to the import pipeline, and its status."""

    name = "collection"
