import os
from pathlib import Path
from typing import Any, TextIO, cast

from django.core.management.base import CommandError, CommandParser
from django_scopes import scope

from accounts.commands import PartnerCommand, iso_date
from exports.cells import CsvFile
from exports.portfolio import GRAINS, ExportError, export_date, portfolio_lines


class Command(PartnerCommand):
    help = "Write a partner's portfolio CSV (SPEC §7) to stdout or --output: the same file as the web export."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", required=True, help="The partner (slug).")
        parser.add_argument("--as-of", type=iso_date, help="A snapshot date, YYYY-MM-DD (default: the latest).")
        parser.add_argument(
            "--grain", choices=list(GRAINS), default="sku", help="Rows per SKU (default), workload or family."
        )
        parser.add_argument("--output", type=Path, help="Write to this file instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        partner = self.get_partner(options["partner"])
        with scope(partner=partner):
            try:
                as_of = export_date(partner=partner, requested=options["as_of"])
            except ExportError as error:
                raise CommandError(str(error)) from None
        lines = portfolio_lines(partner=partner, as_of=as_of, grain=options["grain"])
        rows = self._write_file(options["output"], lines) if options["output"] else self._write_stdout(lines)
        self.say(f"{partner.slug}: {rows:,} {options['grain']} rows of {as_of:%Y-%m-%d}")

    @staticmethod
    def _write_file(path: Path, lines: CsvFile) -> int:
        """Writes beside the target and renames at the end: an error never leaves half a file."""
        partial = path.with_name(f".{path.name}.partial")
        try:
            with partial.open("wb") as handle:
                for block in lines:
                    handle.write(block)
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise CommandError(f"Cannot write {path}: {error.strerror}.") from None
        return lines.rows

    def _write_stdout(self, lines: CsvFile) -> int:
        stream = cast(TextIO, self.stdout._out)  # the stream OutputWrapper writes to
        binary = getattr(stream, "buffer", None)
        for block in lines:
            if binary is not None:
                binary.write(block)
            else:
                stream.write(block.decode())
        stream.flush()
        return lines.rows
