import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_scopes import scope

from accounts.commands import PartnerCommand
from collection import services
from collection.forms import ConnectionForm


class Command(PartnerCommand):
    help = (
        "Connect a partner to the vendor's APIs (SPEC §9): its directory tenant id and its app's client id; "
        "the client secret is read from standard input (one line), never from the command line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", required=True, help="The partner's slug.")
        parser.add_argument("--tenant-id", required=True, help="The partner's own directory tenant id (a GUID).")
        parser.add_argument("--client-id", required=True, help="The application (client) id of its app registration.")

    def handle(self, *args: Any, partner: str, tenant_id: str, client_id: str, **options: Any) -> None:
        tenant = self.get_partner(partner)
        if sys.stdin.isatty():
            self.stderr.write("Client secret (one line, not echoed back anywhere): ", ending="")
            self.stderr.flush()
        secret = sys.stdin.readline().strip()
        form = ConnectionForm(
            {"tenant_id": tenant_id, "client_id": client_id, "client_secret": secret}, has_secret=False
        )
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items())
            raise CommandError(problems.replace("client_secret:", "the secret on standard input:"))
        with scope(partner=tenant):
            services.connection_save(
                partner=tenant,
                tenant_id=form.cleaned_data["tenant_id"],
                client_id=form.cleaned_data["client_id"],
                secret=form.cleaned_data["client_secret"],
                by=None,
            )
        self.say(f"{tenant.slug}: connected (tenant {form.cleaned_data['tenant_id']}); test it with pull_vendor_data.")
