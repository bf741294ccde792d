"""The "Support (read-only)" group of operators' support accounts. Its permissions (every model's
view permission) are set after each `migrate` (accounts.operators.services.support_group_sync),
once Django has created the permissions of every model."""

from django.db import migrations

SUPPORT_GROUP = "Support (read-only)"


def create_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=SUPPORT_GROUP)


def delete_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=SUPPORT_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_partner_staff_not_operators"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_support_group, delete_support_group)]
