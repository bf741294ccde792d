from typing import Any

from django_scopes import scopes_disabled

from accounts.commands import PartnerCommand
from collection import services


class Command(PartnerCommand):
    help = (
        "Encrypt every stored vendor secret again with the first key of CONNECTION_KEYS (after putting a new "
        "key first); then the old keys can leave CONNECTION_KEYS."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with scopes_disabled():  # an operator's command over every partner's connection
            count = services.connection_keys_rotate()
        self.say(f"{count} connection secret(s) encrypted with the first key of CONNECTION_KEYS.")
