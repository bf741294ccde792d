"""What an import tells as it goes: how many files it reads, the rows read of each, each file
done. This base listens to nothing; the import service's tracker (imports/progress.py) keeps it
for the run's page and the sweeper, the import_data command prints the rows on a terminal."""

from __future__ import annotations


class Progress:
    def files(self, total: int) -> None:
        """The import reads `total` files."""

    def rows(self, name: str, rows: int) -> None:
        """`rows` rows of the file `name` are read so far."""

    def file_done(self, name: str) -> None:
        """The file `name` is read to its end."""
