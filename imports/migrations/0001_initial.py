import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor, *, from_app: str, to_app: str) -> None:
    """Admin history and permissions point at the content type: it moves with the model."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label=from_app, model="importrun").update(app_label=to_app)


class Migration(migrations.Migration):
    """ImportRun, moved here from customers: the model's state only. Its table keeps the name
    `customers_importrun` (db_table), so no row is copied or touched."""

    initial = True

    dependencies = [
        ("accounts", "0002_api_tokens"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0004_subscription_auto_renew_billing_cycle"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ImportRun",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("origin", models.CharField(choices=[("command", "Command line"), ("upload", "Web upload"), ("api", "API")], max_length=10)),
                        ("source_name", models.CharField(help_text="Folder, archive or uploaded file names.", max_length=500)),
                        ("sha256", models.CharField(blank=True, max_length=64)),
                        ("status", models.CharField(choices=[("running", "Running"), ("succeeded", "Succeeded"), ("failed", "Failed")], default="running", max_length=10)),
                        ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("counts", models.JSONField(blank=True, default=dict)),
                        ("errors", models.JSONField(blank=True, default=list)),
                        ("error_count", models.PositiveIntegerField(default=0)),
                        ("warnings", models.JSONField(blank=True, default=list)),
                        ("affected_from", models.DateField(blank=True, null=True)),
                        ("affected_to", models.DateField(blank=True, null=True)),
                        ("partner", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.partner")),
                        ("started_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "db_table": "customers_importrun",
                        "ordering": ["-started_at", "-id"],
                        "indexes": [models.Index(fields=["partner", "-started_at"], name="importrun_partner_started")],
                    },
                ),
            ],
        ),
        migrations.RunPython(
            lambda apps, editor: move_content_type(apps, editor, from_app="customers", to_app="imports"),
            lambda apps, editor: move_content_type(apps, editor, from_app="imports", to_app="customers"),
        ),
    ]
