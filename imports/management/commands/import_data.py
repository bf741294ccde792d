import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_scopes import scope

from accounts.commands import PartnerCommand
from imports.models import ImportRun
from imports.pipeline.issues import ImportIssue
from imports.pipeline.progress import Progress
from imports.pipeline.sources import source_from_path
from imports.services import data_import


class Command(PartnerCommand):
    help = "Import a partner's data files (SPEC §6, vendor exports) from a folder or a .zip: all or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", required=True, help="The partner's slug.")
        parser.add_argument("path", type=Path, help="A folder or a .zip of the import files.")

    def handle(self, *args: Any, partner: str, path: Path, **options: Any) -> None:
        tenant = self.get_partner(partner)
        progress = _TerminalProgress(self) if sys.stderr.isatty() else None
        with scope(partner=tenant):
            run = data_import(
                partner=tenant, source=source_from_path(path), origin=ImportRun.Origin.COMMAND, progress=progress
            )
        if progress:
            self.stderr.write("")
        report_import(self, run)
        if run.status != ImportRun.Status.SUCCEEDED:
            raise CommandError(f"Import refused: {run.error_count} problem(s); nothing was written.")


class _TerminalProgress(Progress):
    def __init__(self, command: PartnerCommand) -> None:
        self.command = command

    def rows(self, name: str, rows: int) -> None:
        self.command.stderr.write(f"\r  reading {name}: {rows:,} rows", ending="")
        self.command.stderr.flush()


def report_import(command: PartnerCommand, run: ImportRun) -> None:
    """Prints an import's counts, warnings and problems (one FILE:LINE:COLUMN line each)."""
    for name, counts in run.counts.items():
        command.say(
            f"{name}: {counts['rows']} rows, {counts['created']} created, "
            f"{counts['updated']} updated, {counts['unchanged']} unchanged"
        )
    for warning in run.warnings:
        command.warn(f"warning: {warning}")
    for error in run.errors:
        command.stderr.write(str(ImportIssue(**error)))
    if run.error_count > len(run.errors):
        command.stderr.write(f"… and {run.error_count - len(run.errors)} more problems not listed")
