"""Small database helpers shared by the apps."""

import zlib

from django.db import connection


def _lock_key(kind: str, partner_id: int) -> int:
    return (zlib.crc32(kind.encode()) << 31) ^ partner_id


def partner_lock(kind: str, partner_id: int) -> None:
    """Holds a per-partner lock of one kind ("import", "metrics") until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so a second run waits for the first.
    SQLite: every write transaction is IMMEDIATE (settings), which already serialises writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(kind, partner_id)])


def partner_try_lock(kind: str, partner_id: int) -> bool:
    """Like `partner_lock`, but answers False at once when another transaction holds it."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_key(kind, partner_id)])
        return bool(cursor.fetchone()[0])
