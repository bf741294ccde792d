from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_scopes import scope

from accounts.commands import PartnerCommand
from collection import services
from collection.models import CustomerSync, PullStatus, PullTrigger


class Command(PartnerCommand):
    help = (
        "Pull a partner's data from the vendor's APIs now (SPEC §9), then queue the recompute of the dates "
        "that changed. Exits 0 when the pull ran, even if some customers failed (one line each on stderr), "
        "1 when nothing could be pulled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", required=True, help="The partner's slug.")
        parser.add_argument("--customer", default="", metavar="TENANT_ID", help="Pull this customer only.")

    def handle(self, *args: Any, partner: str, customer: str, **options: Any) -> None:
        tenant = self.get_partner(partner)
        with scope(partner=tenant):
            run = services.pull_start(partner=tenant, trigger=PullTrigger.COMMAND, customer=customer.strip())
            if run is None:
                raise CommandError("A pull of this partner is running already; see the sync status page.")
            run = services.vendor_pull(run=run)
            if run.status == PullStatus.FAILED:
                raise CommandError(f"Nothing could be pulled: {run.get_error_kind_display()}: {run.error}")
            failed = CustomerSync.objects.filter(partner=tenant, last_attempt_at__gte=run.started_at).exclude(error="")
            for sync in failed.order_by("name", "tenant_id"):
                self.warn(f"{sync.tenant_id} ({sync.name}): {sync.get_error_kind_display()}: {sync.error}")
        self.say(
            f"{tenant.slug}: pulled {run.customers_done - run.customers_failed} of {run.customers_total} customers"
            f"{f', {run.customers_failed} failed' if run.customers_failed else ''}; "
            f"{run.requests} requests, {run.retries} retried, {run.throttled} throttled."
        )
