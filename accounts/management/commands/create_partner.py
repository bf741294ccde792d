from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from accounts.commands import PartnerCommand
from accounts.services import partner_create


class Command(PartnerCommand):
    help = "Create a partner (a tenant): create_partner SLUG --name NAME"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)

    def handle(self, *args: Any, slug: str, name: str, **options: Any) -> None:
        try:
            partner = partner_create(slug=slug, name=name)
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        self.say(f"Created partner '{partner.slug}' ({partner.name}).")
