import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.commands import PartnerCommand
from accounts.operators.offboarding import partner_data_counts, partner_offboard


class Command(PartnerCommand):
    help = (
        "Delete a partner and all of its data (customers, usage, metrics, staff, tokens, runs), set-based, "
        "after a confirmation: type the partner's slug, or pass --yes. Cannot be undone: take a backup first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The partner's slug.")
        parser.add_argument("--yes", action="store_true", help="Do not ask (for scripts).")

    def handle(self, *args: Any, slug: str, yes: bool, **options: Any) -> None:
        partner = self.get_partner(slug)
        counts = partner_data_counts(partner=partner)
        self.say(f"Partner '{partner.slug}' ({partner.name}) holds:")
        for table, rows in counts.items():
            self.stderr.write(f"  {table}: {rows} rows")
        if not yes:
            self._confirm(partner.slug)
        self.say("Deleting …")
        deleted = partner_offboard(partner=partner, on_table=self._deleted)
        self.say(f"Offboarded '{partner.slug}': {sum(deleted.values())} rows deleted in {len(deleted)} tables.")

    def _deleted(self, table: str, rows: int) -> None:
        self.stderr.write(f"  deleted {rows} rows of {table}")

    def _confirm(self, slug: str) -> None:
        self.stderr.write(f"This deletes every row above for good. Type the slug ({slug}) to confirm: ", ending="")
        self.stderr.flush()
        if sys.stdin.readline().strip() != slug:
            raise CommandError("Not confirmed (or no input; pass --yes in scripts): nothing was deleted.")
