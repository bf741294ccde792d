"""Small database helpers shared by the apps."""

import zlib

from django.db import connection


def partner_lock(kind: str, partner_id: int) -> None:
    """Holds a per-partner lock of one kind ("import", "metrics") until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so a second run waits for the first.
    SQLite: every write transaction is IMMEDIATE (settings), which already serialises writers.
    """
    if connection.vendor == "postgresql":
        key = (zlib.crc32(kind.encode()) << 31) ^ partner_id
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
