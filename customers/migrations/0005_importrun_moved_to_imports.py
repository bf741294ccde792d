from django.db import migrations


class Migration(migrations.Migration):
    """ImportRun moved to the imports app (imports/0001): only Django's idea of the model moves;
    the table `customers_importrun` and its rows stay as they are."""

    dependencies = [
        ("customers", "0004_subscription_auto_renew_billing_cycle"),
        ("imports", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="ImportRun")]),
    ]
