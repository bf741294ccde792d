from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from accounts.commands import PartnerCommand
from accounts.roles import Role
from accounts.services import staff_create


class Command(PartnerCommand):
    help = "Create a staff user of a partner, with one role (SPEC §4)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", required=True, help="The partner's slug.")
        parser.add_argument("--email", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="Without one, the account cannot log in until a password is set.")

    def handle(self, *args: Any, partner: str, email: str, role: str, password: str | None, **options: Any) -> None:
        tenant = self.get_partner(partner)
        try:
            user = staff_create(partner=tenant, email=email, role=role, password=password)
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        self.say(f"Created {Role(user.role).label} {user.email} for partner '{tenant.slug}'.")
