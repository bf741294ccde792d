import datetime as dt
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_scopes import scope

from accounts.commands import PartnerCommand, iso_date
from accounts.models import Partner
from metrics.models import RecomputeRun, Trigger
from metrics.services import GaveUp, date_range, metrics_recompute_dates, yesterday


class Command(PartnerCommand):
    help = "Recompute metric snapshots (SPEC §2). Default: yesterday, every partner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", help="Only this partner (slug).")
        parser.add_argument("--as-of", type=iso_date, help="One date, YYYY-MM-DD.")
        parser.add_argument("--from", dest="start", type=iso_date, help="First date of a backfill (included).")
        parser.add_argument("--to", dest="end", type=iso_date, help="Last date of a backfill (included).")

    def handle(self, *args: Any, **options: Any) -> None:
        dates = self._dates(options["as_of"], options["start"], options["end"])
        partners = [self.get_partner(options["partner"])] if options["partner"] else list(Partner.objects.all())
        if not partners:
            self.warn("There are no partners: nothing to recompute.")
        for partner in partners:
            with scope(partner=partner):
                try:
                    metrics_recompute_dates(
                        partner=partner, dates=dates, trigger=Trigger.COMMAND, progress=self._progress
                    )
                except GaveUp as error:
                    raise CommandError(str(error)) from None
                except Exception as error:
                    raise CommandError(f"Recompute of '{partner.slug}' failed: {error}") from error

    @staticmethod
    def _dates(as_of: dt.date | None, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
        if as_of and (start or end):
            raise CommandError("Give either --as-of or --from/--to, not both.")
        if bool(start) != bool(end):
            raise CommandError("--from and --to go together.")
        if start and end:
            if end < start:
                raise CommandError(f"--to {end} is before --from {start}.")
            return date_range(start, end)
        return [as_of or yesterday()]

    def _progress(self, run: RecomputeRun) -> None:
        self.say(f"{run.partner.slug} {run.as_of}: {run.get_status_display().lower()} in {run.duration_ms or 0} ms")
