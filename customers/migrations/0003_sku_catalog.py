"""Ships the SKU catalog of SPEC §1 (products without a partner)."""

from django.db import migrations

from customers.catalog import CATALOG


def add_catalog(apps, schema_editor):
    Product = apps.get_model("customers", "Product")
    ProductWorkload = apps.get_model("customers", "ProductWorkload")
    for sku, name, family, workloads in CATALOG:
        product, _ = Product.objects.update_or_create(
            partner=None, sku=sku, defaults={"name": name, "family": family}
        )
        for workload in workloads:
            ProductWorkload.objects.get_or_create(product=product, workload=workload)


def remove_catalog(apps, schema_editor):
    apps.get_model("customers", "Product").objects.filter(partner=None).delete()


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_composite_foreign_keys")]

    operations = [migrations.RunPython(add_catalog, remove_catalog)]
