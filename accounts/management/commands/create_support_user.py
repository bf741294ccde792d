import getpass
import sys
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from accounts.commands import PartnerCommand
from accounts.operators.services import SUPPORT_GROUP, support_user_create


class Command(PartnerCommand):
    help = (
        f"Create a read-only support account for Django's admin: no partner, not a superuser, in the "
        f"'{SUPPORT_GROUP}' group (view permissions only). The password is asked for, or read from stdin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument(
            "--no-password", action="store_true", help="No password: a superuser sets one in the admin later."
        )

    def handle(self, *args: Any, email: str, no_password: bool, **options: Any) -> None:
        password = None if no_password else self._password()
        if password is not None:
            try:
                validate_password(password)
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from None
        try:
            user = support_user_create(email=email, password=password)
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        self.say(f"Created the read-only support account {user.email} (admin at /admin/).")

    def _password(self) -> str:
        """Asked twice on a terminal; otherwise the first line of stdin (never an argument: ps shows those)."""
        if not sys.stdin.isatty():
            return sys.stdin.readline().rstrip("\n")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The two passwords differ.")
        return first
