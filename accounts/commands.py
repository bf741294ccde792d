"""What the project's management commands share: messages on stderr, partner lookup."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Partner


class PartnerCommand(BaseCommand):
    """Base of the project's commands. Every message goes to stderr (SPEC §5): stdout is
    reserved for data such as CSV. Any error exits 1 (CommandError)."""

    def say(self, message: str) -> None:
        self.stderr.write(message, style_func=self.style.SUCCESS)

    def warn(self, message: str) -> None:
        self.stderr.write(message, style_func=self.style.WARNING)

    @staticmethod
    def get_partner(slug: str) -> Partner:
        try:
            return Partner.objects.get(slug=slug)
        except Partner.DoesNotExist:
            raise CommandError(f"No partner with slug '{slug}'.") from None


def iso_date(value: str) -> dt.date:
    """An argparse type: a YYYY-MM-DD date, or an error that says what is wrong."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"'{value}' is not a date in YYYY-MM-DD form.") from None
