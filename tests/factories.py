"""factory_boy factories. Tenant factories take `partner` explicitly; related rows follow it."""

import datetime as dt

import factory

from accounts.models import Partner
from customers import models
from customers.catalog import CATALOG


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"partner-{n}")
    name = factory.Sequence(lambda n: f"Partner {n}")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Customer

    external_id = factory.Sequence(lambda n: f"C{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    domain = factory.LazyAttribute(lambda o: f"{o.external_id.lower()}.example")


def catalog_product(sku: str) -> models.Product:
    """A shipped catalog entry (restored if a transactional test flushed the data migration)."""
    product = models.Product.objects.filter(partner=None, sku=sku).first()
    if product is None:
        _, name, family, workloads = next(entry for entry in CATALOG if entry[0] == sku)
        product = models.Product.objects.create(partner=None, sku=sku, name=name, family=family)
        models.ProductWorkload.objects.bulk_create(
            models.ProductWorkload(product=product, workload=w) for w in workloads
        )
    return product


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Subscription

    partner = factory.SelfAttribute("customer.partner")
    product = factory.LazyFunction(lambda: catalog_product("ENTERPRISEPACK"))
    external_id = factory.Sequence(lambda n: f"S{n}")
    quantity = 10
    status = models.SubscriptionStatus.ACTIVE
    is_trial = False
    source = models.Source.OWN
    start_date = dt.date(2024, 1, 1)
    end_date = None


class EndUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.EndUser

    partner = factory.SelfAttribute("customer.partner")
    external_id = factory.Sequence(lambda n: f"U{n}")
    upn = factory.LazyAttribute(lambda o: f"{o.external_id.lower()}@{o.customer.domain}")
    display_name = factory.Sequence(lambda n: f"User {n}")


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.LicenseAssignment

    partner = factory.SelfAttribute("user.partner")
    customer = factory.SelfAttribute("user.customer")
    assigned_on = dt.date(2024, 1, 1)
    removed_on = None
    state = models.AssignmentState.ACTIVE


# A valid POST of the settings page's thresholds (SPEC §3 defaults but usage 55% and 60 days).
SETTINGS_FORM = {
    "low_usage_pct": "55",
    "unused_licenses_min": "5",
    "unused_licenses_pct": "25",
    "howto_per_100_users": "5",
    "howto_requests_min": "3",
    "growth_deployment_pct": "90",
    "growth_usage_pct": "80",
    "inactivity_days": "60",
    "currency": "usd",
}
