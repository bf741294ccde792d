import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django_scopes import scope

from accounts.commands import PartnerCommand
from accounts.models import Partner
from accounts.roles import Role
from accounts.selectors import staff_email_taken
from accounts.services import partner_create, staff_create
from customers.selectors import customer_count
from imports.demo import DemoConfig, write_demo_files
from imports.management.commands.import_data import report_import
from imports.models import ImportRun
from imports.pipeline.sources import source_from_path
from imports.services import data_import
from metrics.models import Trigger
from metrics.services import date_range, metrics_recompute_dates

DEMO_PASSWORD = "demo-password-2024"  # noqa: S105 (documented demo logins)
DEMO_STAFF = {
    Role.GLOBAL_ADMIN: "global.admin@demo.example",
    Role.USER_ADMIN: "user.admin@demo.example",
    Role.ADMIN_AGENT: "admin.agent@demo.example",
    Role.SALES_AGENT: "sales.agent@demo.example",
}
DEMO_NAMES = {
    "global.admin@demo.example": "Grace Hopper",
    "user.admin@demo.example": "Ursula Franklin",
    "admin.agent@demo.example": "Alan Kay",
    "sales.agent@demo.example": "Sally Ride",
    "global.admin@northwind.example": "Nora Winter",
}
# A second, small partner with the same external ids: shows that tenants never mix.
NORTHWIND_ADMIN = "global.admin@northwind.example"


class Command(PartnerCommand):
    help = "Create a demo partner with staff of every role, varied customers and usage history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=42)
        parser.add_argument("--users", type=int, default=1_800, help="End users across all demo customers.")
        parser.add_argument("--days", type=int, default=130, help="Days of activity history, ending yesterday.")
        parser.add_argument("--seed", type=int, default=1, help="Same seed, same data (given the same --today).")
        parser.add_argument("--today", type=dt.date.fromisoformat, help="Pretend today is this date (YYYY-MM-DD).")
        parser.add_argument("--output", type=Path, help="Only write the import files into this folder.")
        parser.add_argument(
            "--metrics-days", type=int, default=91, help="Compute snapshots for this many days up to yesterday."
        )
        parser.add_argument("--if-missing", action="store_true", help="Do nothing when the demo partner has data.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["customers"] < 1 or options["users"] < 1 or options["days"] < 28:
            raise CommandError("--customers and --users must be positive and --days at least 28.")
        today = options["today"] or timezone.localdate()
        config = DemoConfig(options["customers"], options["users"], options["days"], options["seed"], today)
        if options["output"]:
            counts = write_demo_files(options["output"], config)
            self.say(f"Wrote {_describe(counts)} to {options['output']}.")
            return
        if options["if_missing"] and _has_customers("demo"):
            self.say("The demo partner has data already: nothing to do.")
            return
        demo = self._partner("demo", "Contoso Cloud Partners", DEMO_STAFF)
        self._load(demo, config)
        northwind = self._partner("northwind", "Northwind Solutions", {Role.GLOBAL_ADMIN: NORTHWIND_ADMIN})
        self._load(northwind, DemoConfig(12, 250, config.days, config.seed + 1, today))
        self._metrics(demo, today, options["metrics_days"])
        self._metrics(northwind, today, options["metrics_days"])
        self.say("\nDemo logins (password for all: " + DEMO_PASSWORD + ")")
        for role, email in [*DEMO_STAFF.items(), (Role.GLOBAL_ADMIN, NORTHWIND_ADMIN)]:
            self.say(f"  {email:34} {role.label}")

    @transaction.atomic
    def _partner(self, slug: str, name: str, staff: dict[Role, str]) -> Partner:
        partner = Partner.objects.filter(slug=slug).first() or partner_create(slug=slug, name=name)
        for role, email in staff.items():
            if not staff_email_taken(email=email):
                name = DEMO_NAMES.get(email, role.label)
                staff_create(partner=partner, email=email, role=role, password=DEMO_PASSWORD, full_name=name)
        return partner

    def _load(self, partner: Partner, config: DemoConfig) -> None:
        with tempfile.TemporaryDirectory(prefix="demo-") as folder:
            counts = write_demo_files(Path(folder), config)
            self.say(f"{partner.slug}: generated {_describe(counts)}; importing …")
            with scope(partner=partner):
                run = data_import(
                    partner=partner, source=source_from_path(Path(folder)), origin=ImportRun.Origin.COMMAND
                )
        report_import(self, run)
        if run.status != ImportRun.Status.SUCCEEDED:
            raise CommandError(f"The demo import of '{partner.slug}' failed.")

    def _metrics(self, partner: Partner, today: dt.date, days: int) -> None:
        if days < 1:
            return
        last = today - dt.timedelta(days=1)
        dates = date_range(last - dt.timedelta(days=days - 1), last)
        self.say(f"{partner.slug}: computing metrics for {dates[0]} … {dates[-1]}")
        with scope(partner=partner):
            metrics_recompute_dates(partner=partner, dates=dates, trigger=Trigger.DEMO)


def _has_customers(slug: str) -> bool:
    partner = Partner.objects.filter(slug=slug).first()
    if partner is None:
        return False
    with scope(partner=partner):
        return customer_count(partner=partner) > 0


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{rows:,} {name.removesuffix('.csv').replace('_', ' ')}" for name, rows in counts.items())
