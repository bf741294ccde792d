from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Partners and staff"

    def ready(self) -> None:
        from accounts.operators.services import support_group_after_migrate

        # Once per app, after auth's handler created that app's permissions: the last call sees all.
        post_migrate.connect(support_group_after_migrate, dispatch_uid="accounts.support_group")
